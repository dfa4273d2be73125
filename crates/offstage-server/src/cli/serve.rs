//! `offstage serve`: the HTTP API and live events over an embedded SQLite file.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{app, demo, AppState, Tokens};

/// `offstage serve`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Serve {
    /// The SQLite database file.
    #[arg(long, env = "OFFSTAGE_DB", default_value = "offstage.db")]
    db: PathBuf,
    /// Where to listen.
    #[arg(long, env = "OFFSTAGE_ADDR", default_value = "127.0.0.1:7700")]
    addr: SocketAddr,
    /// A token as ROLE:SECRET (roles: read, launch, control, worker); repeat for more.
    #[arg(long = "token", value_name = "ROLE:SECRET", value_parser = Tokens::parse_one)]
    tokens: Vec<(crate::Role, String)>,
    /// Registers the built-in demo task types (demo.sleep, demo.count, demo.echo, ...).
    #[arg(long)]
    demo: bool,
    /// A task type that remote workers serve: launchable before any worker serving it
    /// connects (its tasks wait queued). Repeat for more.
    #[arg(long = "remote-type", value_name = "NAME")]
    remote_types: Vec<String>,
    /// Allows serving without tokens on an address other than loopback.
    #[arg(long)]
    insecure: bool,
    /// On SIGINT/SIGTERM, how long running tasks get to finish before they are recorded
    /// `missing` (kind `interrupted`).
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
}

pub async fn run(serve: Serve) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let tokens = Tokens::new(serve.tokens);
    if tokens.is_open() && !serve.addr.ip().is_loopback() && !serve.insecure {
        return Err(format!(
            "refusing to serve {} without tokens: anyone who can reach it could launch and kill \
             tasks. Give --token ROLE:SECRET, listen on 127.0.0.1, or pass --insecure",
            serve.addr
        ));
    }
    let drain = std::time::Duration::try_from_secs_f64(serve.drain_s)
        .map_err(|_| format!("--drain-s {} is not a number of seconds", serve.drain_s))?;
    let mut builder = offstage::Runtime::builder()
        .sqlite(&serve.db)
        .shutdown_drain(drain);
    if serve.demo {
        builder = demo::register(builder);
    }
    for name in serve.remote_types {
        builder = builder.remote_task(name);
    }
    let rt = builder.build().await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(serve.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", serve.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, db = %serve.db.display(), open = tokens.is_open(), "offstage serving");
    println!("offstage listening on http://{local}");
    let state = AppState::new(rt.clone()).with_tokens(tokens);
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
    tracing::info!("shutting down: draining running tasks");
    rt.shutdown().await.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
