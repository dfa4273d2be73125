//! The crawler: Offstage's reference application. A tiny search engine whose crawl is a
//! background task: it reads a sitemap into a table of pages, the page watches it live with
//! Offstage's browser client and a scoped token minted for its session, a Stop button kills it, a search box finds pages by full text, and reopening the
//! page reattaches to the crawl still running. A generated demo site on a local port makes it
//! all work offline.
//!
//! Run with `cargo run -p crawler`, then open the address it prints.
//!
//! ```sh
//! cargo run -p crawler -- --addr 127.0.0.1:3000 --db crawler.db --delay-ms 30
//! ```
//!
//! The scoped tokens are signed with `OFFSTAGE_TOKEN_SECRET` (at least 32 bytes), or else with
//! a random secret made at start: then the tokens of the pages already open stop working when
//! the app restarts, and the pages ask for new ones.

mod crawl;
mod demo_site;
mod pages;
mod sitemap;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use offstage::Runtime;
use offstage_server::{AppState, Role, ScopedTokens, Sites, Tokens};

use crate::crawl::Crawl;
use crate::demo_site::DemoSite;
use crate::pages::Pages;

/// A tiny search engine whose crawl is an Offstage background task.
#[derive(Debug, Parser)]
struct Args {
    /// Where the app listens; port 0 picks a free one. The first line printed is its URL.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The SQLite file that holds the tasks and the pages.
    #[arg(long, default_value = "crawler.db")]
    db: PathBuf,
    /// The pause between two pages of a crawl, in milliseconds.
    #[arg(long, default_value_t = 30)]
    delay_ms: u64,
    /// How many pages the demo site has.
    #[arg(long, default_value_t = 300)]
    demo_pages: usize,
    /// A `control` token for Offstage's dashboard and API at `/offstage`. Without one they
    /// are open on a loopback address, and on any other take only the pages' scoped tokens.
    #[arg(long, env = "CRAWLER_OFFSTAGE_TOKEN")]
    offstage_token: Option<String>,
    /// Also answer to this host name at `/offstage`, where the page watches its crawl (IP
    /// addresses and localhost always are; others get 403 there, against DNS rebinding): the
    /// name the app is served under, such as crawler.example.com. Repeat for more.
    #[arg(long = "allowed-host", value_name = "HOST", value_parser = Sites::parse_host)]
    allowed_hosts: Vec<String>,
    /// How long a page's scoped token lives, in seconds; the page renews it halfway.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    token_ttl_s: u64,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("crawler: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal, and never with NO_COLOR set: a log file gets plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();

    // The secret first: a bad one stops the app before it creates anything.
    let (tokens, random_secret) = match std::env::var("OFFSTAGE_TOKEN_SECRET") {
        Ok(secret) => (
            ScopedTokens::try_new(secret.trim().as_bytes())
                .map_err(|e| format!("OFFSTAGE_TOKEN_SECRET: {e}"))?,
            false,
        ),
        Err(_) => (ScopedTokens::random(), true),
    };

    // Then the demo site: its address is the sitemap box's default.
    let demo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let demo_url = format!("http://{}", demo.local_addr()?);
    let site = DemoSite {
        pages: args.demo_pages,
    };
    tokio::spawn(async move { axum::serve(demo, site.router()).await });

    let pages = Pages::open(&args.db)
        .map_err(|e| format!("opening the pages table in {}: {e}", args.db.display()))?;
    let runtime = Runtime::builder()
        .sqlite(&args.db)
        .register(Crawl {
            pages: pages.clone(),
            http: Crawl::client(),
            delay: Duration::from_millis(args.delay_ms),
        })
        // A crawl does not end by itself in the default 10 s drain: on Ctrl-C or SIGTERM, stop
        // sooner.
        .shutdown_drain(Duration::from_secs(1))
        .build()
        .await?;

    // Operators' access to Offstage's API and dashboard. The pages' scoped tokens work
    // whichever it is; without a control token off loopback the API is closed to everything
    // but them.
    let operators = match (&args.offstage_token, args.addr.ip().is_loopback()) {
        (Some(token), _) => Tokens::new([(Role::Control, token.clone())]),
        (None, true) => Tokens::default(),
        (None, false) => Tokens::closed(),
    };
    let mut sites = Sites::default();
    for host in &args.allowed_hosts {
        sites = sites.allow_host(host)?;
    }
    let dashboard = args.offstage_token.is_some() || args.addr.ip().is_loopback();
    let app = web::app(
        web::WebState {
            runtime: runtime.clone(),
            pages,
            default_sitemap: format!("{demo_url}/sitemap.xml"),
            dashboard,
            tokens,
            token_ttl: Duration::from_secs(args.token_ttl_s),
        },
        AppState::new(runtime.clone())
            .with_tokens(operators)
            .with_sites(sites),
    );

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e}; if another program has that port, stop it or give \
                 this one another address: cargo run -p crawler -- --addr 127.0.0.1:3002",
                args.addr
            )
        })?;
    let url = format!("http://{}", listener.local_addr()?);
    // The first line is the address, for scripts and tests that start the app on port 0.
    println!("crawler listening on {url}");
    println!("demo site on {demo_url} (sitemap {demo_url}/sitemap.xml)");
    if dashboard {
        println!("Offstage's dashboard on {url}/offstage");
    } else {
        println!("Offstage's dashboard is closed: give --offstage-token to open it at /offstage");
    }
    if random_secret {
        println!(
            "scoped tokens are signed with a random secret, good until the app stops: set \
             OFFSTAGE_TOKEN_SECRET (32 bytes or more) to keep them across restarts"
        );
    }
    axum::serve(listener, app)
        // Ctrl-C or SIGTERM (systemd, containers): stop taking requests, then drain.
        .with_graceful_shutdown(offstage_server::shutdown_signal())
        .await?;
    runtime.shutdown().await?;
    Ok(())
}
