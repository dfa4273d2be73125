//! The crawler: Offstage's reference application. A tiny search engine whose crawl is a
//! background task: it reads a sitemap into a table of pages, the page shows its progress live
//! over SSE, a Stop button kills it, a search box finds pages by full text, and reopening the
//! page reattaches to the crawl still running. A generated demo site on a local port makes it
//! all work offline.
//!
//! Run with `cargo run -p crawler`, then open the address it prints.
//!
//! ```sh
//! cargo run -p crawler -- --addr 127.0.0.1:3000 --db crawler.db --delay-ms 30
//! ```

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
use offstage_server::{AppState, Role, Tokens};

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
    /// are mounted open on a loopback address, and not at all on any other.
    #[arg(long, env = "CRAWLER_OFFSTAGE_TOKEN")]
    offstage_token: Option<String>,
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

    // The demo site first: its address is the sitemap box's default.
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

    let offstage = match (&args.offstage_token, args.addr.ip().is_loopback()) {
        (Some(token), _) => Some(Tokens::new([(Role::Control, token.clone())])),
        (None, true) => Some(Tokens::default()),
        (None, false) => None,
    };
    let mut app = web::app(web::WebState {
        runtime: runtime.clone(),
        pages,
        default_sitemap: format!("{demo_url}/sitemap.xml"),
        dashboard: offstage.is_some(),
    });
    // Offstage's own API and dashboard, for the operator: the crawler's page never uses them.
    if let Some(tokens) = offstage {
        let state = AppState::new(runtime.clone()).with_tokens(tokens);
        // `app_at`, not `nest`: the dashboard answers at `/offstage/` too.
        app = app.merge(offstage_server::app_at("/offstage", state));
    }

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
    match (&args.offstage_token, args.addr.ip().is_loopback()) {
        (None, false) => println!(
            "Offstage's dashboard is not mounted: give --offstage-token to serve it at /offstage"
        ),
        _ => println!("Offstage's dashboard on {url}/offstage"),
    }
    axum::serve(listener, app)
        // Ctrl-C or SIGTERM (systemd, containers): stop taking requests, then drain.
        .with_graceful_shutdown(offstage_server::shutdown_signal())
        .await?;
    runtime.shutdown().await?;
    Ok(())
}
