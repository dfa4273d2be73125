//! `offstage serve`: the HTTP API and live events over a SQLite file or a PostgreSQL database
//! that many servers share; and `offstage migrate`, which prepares the database, or copies one
//! into another (`cli/copy.rs`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use offstage_server::{app, AppState, Role, ScopedTokens, Sites, Tokens};

use super::{Failure, Out};
use crate::demo;

/// `offstage serve`, and the settings `offstage config check` and `config print` read.
///
/// Each setting comes from its flag, else its environment variable (where it has one), else
/// the config file (`--config`, `cli/config.rs`), else its default. `given` records which
/// settings the flags and environment gave, so the file fills in only the others.
#[derive(clap::Args, Debug)]
pub(crate) struct Serve {
    /// A config file (TOML, a `[serve]` table whose keys are these flags' names with `_` for
    /// `-`). Flags and environment variables override it. See docs/configuration.md.
    #[arg(long, env = "OFFSTAGE_CONFIG", value_name = "PATH")]
    pub(super) config: Option<std::path::PathBuf>,
    /// The database: a SQLite file, or a postgres:// URL that many servers may share.
    #[arg(long, env = "OFFSTAGE_DB", default_value = "offstage.db")]
    pub(super) db: String,
    /// Where to listen.
    #[arg(long, env = "OFFSTAGE_ADDR", default_value = "127.0.0.1:7700")]
    pub(super) addr: SocketAddr,
    /// A token as ROLE:SECRET (roles: read, launch, control, worker); repeat for more. Every
    /// user of this machine can read it in `ps`: prefer --token-file or OFFSTAGE_TOKENS.
    #[arg(long = "token", value_name = "ROLE:SECRET", value_parser = Tokens::parse_one)]
    pub(super) tokens: Vec<(Role, String)>,
    /// A file of tokens, one ROLE:SECRET per line (`#` starts a comment line); repeat for
    /// more. Tokens may also come from OFFSTAGE_TOKENS (ROLE:SECRET entries separated by
    /// commas or newlines). All of them count.
    #[arg(long = "token-file", value_name = "PATH")]
    pub(super) token_files: Vec<std::path::PathBuf>,
    /// Also answer to this host name (the `Host` header): a name like offstage.example.com,
    /// *.example.com for the names under it, or * for any. IP addresses (the bound address
    /// among them), localhost and *.localhost are always answered; other names get 403, so
    /// that no web page can reach the server by DNS rebinding. Repeat for more.
    #[arg(long = "allowed-host", value_name = "HOST", value_parser = Sites::parse_host)]
    pub(super) allowed_hosts: Vec<String>,
    /// Also take state-changing requests (launch, kill, purge, ...) from web pages on this
    /// origin (scheme://host or scheme://host:port, or * for any). Pages on other origins get 403 for them;
    /// the dashboard (same origin), the CLI and scripts are not affected. Repeat for more.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_parser = Sites::parse_origin)]
    pub(super) allowed_origins: Vec<String>,
    /// Answer browsers' cross-origin requests (CORS) from pages on this origin (scheme://host
    /// or scheme://host:port, or * for any), so that a page of your app on another origin can
    /// call this server with a scoped token. Also counts as an --allowed-origin. Off by
    /// default; repeat for more.
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_parser = Sites::parse_origin)]
    pub(super) cors_origins: Vec<String>,
    /// Link each task's trace id on the dashboard's task page to this URL, with `{trace_id}`
    /// replaced (`https://jaeger.example/trace/{trace_id}`).
    #[arg(long, env = "OFFSTAGE_TRACE_URL", value_name = "TEMPLATE", value_parser = offstage_server::parse_trace_url)]
    pub(super) trace_url: Option<String>,
    /// A file holding the secret that signs scoped tokens (at least 32 bytes; surrounding
    /// whitespace is ignored). Servers sharing a database must share it. Also from
    /// OFFSTAGE_TOKEN_SECRET. Without either, a random secret is made at start, and the scoped
    /// tokens this server mints work on this process only, until it restarts.
    #[arg(long = "token-secret-file", value_name = "PATH")]
    pub(super) token_secret_file: Option<std::path::PathBuf>,
    /// Registers the built-in demo task types (demo.sleep, demo.count, demo.echo, ...).
    #[arg(long)]
    pub(super) demo: bool,
    /// A task type that remote workers serve: launchable before any worker serving it
    /// connects (its tasks wait queued). Repeat for more.
    #[arg(long = "remote-type", value_name = "NAME")]
    pub(super) remote_types: Vec<String>,
    /// Allows serving without tokens on an address other than loopback.
    #[arg(long)]
    pub(super) insecure: bool,
    /// On SIGINT/SIGTERM, how long running tasks get to finish before they are recorded
    /// `missing` (kind `interrupted`).
    #[arg(long, env = "OFFSTAGE_DRAIN_S", default_value_t = 10.0)]
    pub(super) drain_s: f64,
    /// How long a killed (or timed-out) task gets to stop by itself before it is aborted (an
    /// isolated task's process group gets SIGKILL).
    #[arg(long, env = "OFFSTAGE_KILL_GRACE_S", default_value_t = 5.0)]
    pub(super) kill_grace_s: f64,
    /// How often this node heartbeats in the database.
    #[arg(long, env = "OFFSTAGE_HEARTBEAT_S", default_value_t = 1.0)]
    pub(super) heartbeat_s: f64,
    /// How long a node may go without a heartbeat before the others mark its running tasks
    /// `missing`.
    #[arg(long, env = "OFFSTAGE_NODE_TIMEOUT_S", default_value_t = 10.0)]
    pub(super) node_timeout_s: f64,
    /// Most tasks running at once on this node; more wait queued.
    #[arg(long, env = "OFFSTAGE_MAX_CONCURRENCY", default_value_t = 1000)]
    pub(super) max_concurrency: usize,
    /// Most lines kept of each task's log (the truncation mark included); later lines are
    /// dropped.
    #[arg(long, env = "OFFSTAGE_LOG_MAX_LINES", default_value_t = 10_000)]
    pub(super) log_max_lines: u64,
    /// Most bytes of message text kept of each task's log.
    #[arg(long, env = "OFFSTAGE_LOG_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub(super) log_max_bytes: u64,
    /// Worker processes kept started and idle for isolated task types (such as demo.spin), so
    /// that the next isolated task starts without waiting for one.
    #[arg(long, env = "OFFSTAGE_WARM_PROCESSES", default_value_t = 1)]
    pub(super) warm_processes: usize,
    /// Which finished tasks are kept: `forever`, an age after they finished (`7d`, `12h`),
    /// a number per task type (`1000`), or both (`30d,100000`). Older ones are removed by one
    /// of the servers on the database, every minute, in short steps. Give every server the
    /// same rules.
    #[arg(long, env = "OFFSTAGE_KEEP", default_value = "7d", value_name = "RULE")]
    pub(super) keep: offstage::Retention,
    /// A rule for one task type, in place of --keep: NAME=RULE, such as reports.build=1000.
    /// Repeat for more.
    #[arg(long = "keep-type", value_name = "NAME=RULE", value_parser = parse_keep_type)]
    pub(super) keep_types: Vec<(String, offstage::Retention)>,
    /// The settings the flags and the environment gave (clap's argument ids), filled in by
    /// `cli::run` from clap's matches.
    #[arg(skip)]
    pub(super) given: std::collections::BTreeSet<String>,
}

/// `--keep-type NAME=RULE`.
pub(super) fn parse_keep_type(text: &str) -> Result<(String, offstage::Retention), String> {
    let (name, rule) = text.split_once('=').ok_or_else(|| {
        format!("`{text}` is not NAME=RULE: write it as reports.build=1000 or emails.send=3d")
    })?;
    let rule = rule.parse().map_err(|e: offstage::Error| e.to_string())?;
    Ok((name.trim().to_owned(), rule))
}

/// `offstage migrate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Migrate {
    /// The database: a SQLite file, or a postgres:// URL.
    #[arg(long, env = "OFFSTAGE_DB", default_value = "offstage.db")]
    db: String,
    /// Copy every task, log, schedule, shared document, ... from this database (sqlite:PATH,
    /// a path, or a postgres:// URL) into --to, with ids, statuses and timestamps. Stop the
    /// nodes on it first. See docs/migrating.md.
    #[arg(long, value_name = "DATABASE", requires = "to")]
    from: Option<String>,
    /// The database --from is copied into (sqlite:PATH, a path, or a postgres:// URL with
    /// `?options[search_path]=SCHEMA` for a schema of its own); made if missing. Running the
    /// same copy again finishes one that was interrupted.
    #[arg(long, value_name = "DATABASE", requires = "from")]
    to: Option<String>,
    /// Copy into a --to that already holds tasks or other rows, keeping them.
    #[arg(long)]
    into_non_empty: bool,
    /// Copy even while nodes on --from heartbeat (they may change it during the copy).
    #[arg(long)]
    force: bool,
    /// Rows written per transaction.
    #[arg(long, default_value_t = offstage::store::copy::DEFAULT_BATCH, value_name = "ROWS")]
    batch: usize,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag} {value} is not a number of seconds"))
}

/// Shows a database for logs and messages without its password.
pub(super) fn shown(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match db[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &db[..scheme + 3], &db[at..]),
            None => db.to_owned(),
        },
        _ => db.to_owned(),
    }
}

impl Migrate {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            let options = super::copy::Options {
                into_non_empty: self.into_non_empty,
                force: self.force,
                batch: self.batch,
            };
            return super::copy::run(from, to, options, out).await;
        }
        let db = &self.db;
        #[cfg(not(feature = "postgres"))]
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Err(
                "this offstage was built without PostgreSQL: build it with the \
                        `postgres` feature (on by default), or give a SQLite file"
                    .to_owned()
                    .into(),
            );
        }
        #[cfg(feature = "postgres")]
        if offstage::store::postgres::is_postgres_url(db) {
            let (before, after) = offstage::store::postgres::PostgresStore::migrate(db)
                .await
                .map_err(|e| e.to_string())?;
            if before == after {
                out.line(format_args!(
                    "{}: schema version {after}, up to date",
                    shown(db)
                ))?;
            } else {
                out.line(format_args!(
                    "{}: migrated from schema version {before} to {after}",
                    shown(db)
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Opening a SQLite store migrates it.
        offstage::store::sqlite::SqliteStore::open(db)
            .await
            .map_err(|e| e.to_string())?;
        out.line(format_args!("{db}: up to date"))?;
        Ok(ExitCode::SUCCESS)
    }
}

impl Serve {
    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        serve(self.with_config_file()?, out).await?;
        Ok(ExitCode::SUCCESS)
    }
}

async fn serve(serve: Serve, out: &mut Out) -> Result<(), Failure> {
    // Before the runtime is built: its tasks' `tracing` events go on to this subscriber.
    let telemetry = super::telemetry::init()?;
    let served = serve_with(serve, out).await;
    // Last, so the spans of the tasks the shutdown interrupted go out too.
    telemetry.shutdown().await;
    served
}

/// What `serve` runs with, once every setting is read and checked: all that can be wrong
/// with the settings shows here, before the database is opened or the port bound, so that
/// `offstage config check` finds it too.
pub(super) struct Settled {
    tokens: Tokens,
    sites: Sites,
    scoped_tokens: ScopedTokens,
    builder: offstage::RuntimeBuilder,
}

impl Serve {
    /// Reads the token files and the scoped tokens' secret, and checks every setting.
    pub(super) fn settle(&self) -> Result<Settled, Failure> {
        let tokens = Tokens::new(all_tokens(self.tokens.clone(), &self.token_files)?);
        let mut sites = Sites::default();
        for host in &self.allowed_hosts {
            sites = sites.allow_host(host)?;
        }
        for origin in &self.allowed_origins {
            sites = sites.allow_origin(origin)?;
        }
        let scoped_tokens = scoped_tokens(self.token_secret_file.as_deref())?;
        if tokens.is_open() && !self.addr.ip().is_loopback() && !self.insecure {
            let in_file = match &self.config {
                Some(path) => format!(
                    " (in {}: tokens or token_files, addr, or insecure = true)",
                    path.display()
                ),
                None => String::new(),
            };
            return Err(format!(
                "refusing to serve {} without tokens: anyone who can reach it could launch and \
                 kill tasks. Give --token ROLE:SECRET, listen on 127.0.0.1, or pass \
                 --insecure{in_file}",
                self.addr
            )
            .into());
        }
        let mut builder = offstage::Runtime::builder()
            .database(&self.db)
            .shutdown_drain(seconds("drain-s", self.drain_s)?)
            .heartbeat(
                seconds("heartbeat-s", self.heartbeat_s)?,
                seconds("node-timeout-s", self.node_timeout_s)?,
            )
            .kill_grace(seconds("kill-grace-s", self.kill_grace_s)?)
            .max_concurrency(self.max_concurrency)
            .log_limits(self.log_max_lines, self.log_max_bytes)
            .isolation(offstage::Isolation {
                warm: self.warm_processes,
                ..Default::default()
            })
            .retention(self.keep);
        for (name, rule) in &self.keep_types {
            builder = builder.retention_for(name, *rule);
        }
        if self.demo {
            builder = demo::register(builder);
        }
        for name in &self.remote_types {
            builder = builder.remote_task(name);
        }
        Ok(Settled {
            tokens,
            sites,
            scoped_tokens,
            builder,
        })
    }
}

async fn serve_with(serve: Serve, out: &mut Out) -> Result<(), Failure> {
    let Settled {
        tokens,
        sites,
        scoped_tokens,
        builder,
    } = serve.settle()?;
    let rt = builder.build().await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(serve.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", serve.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        addr = %local,
        db = %shown(&serve.db),
        config = ?serve.config,
        open = tokens.is_open(),
        hosts = ?serve.allowed_hosts,
        origins = ?serve.allowed_origins,
        cors = ?serve.cors_origins,
        "offstage serving"
    );
    out.line(format_args!("offstage listening on http://{local}"))?;
    if scoped_tokens.is_ephemeral() {
        tracing::info!(
            "no --token-secret-file or {SECRET_ENV}: scoped tokens are signed with a random \
             secret made at start, so those this server mints work on this process only, until \
             it restarts (and not on other servers sharing the database)"
        );
    }
    let mut state = AppState::new(rt.clone())
        .with_tokens(tokens)
        .with_sites(sites)
        .scoped_tokens(scoped_tokens);
    for origin in &serve.cors_origins {
        state = state.cors_origin(origin);
    }
    if let Some(template) = &serve.trace_url {
        state = state.trace_url(template);
    }
    axum::serve(listener, app(state))
        .with_graceful_shutdown(offstage_server::shutdown_signal())
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
    tracing::info!("shutting down: draining running tasks");
    rt.shutdown().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The environment variable `offstage serve` reads the scoped tokens' secret from.
pub(super) const SECRET_ENV: &str = "OFFSTAGE_TOKEN_SECRET";

/// The scoped tokens' secret: from `--token-secret-file`, else `OFFSTAGE_TOKEN_SECRET`, else
/// made up at random. Errors name where the secret came from, never the secret.
fn scoped_tokens(file: Option<&std::path::Path>) -> Result<ScopedTokens, String> {
    let (secret, source) = if let Some(path) = file {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read --token-secret-file {}: {e}", path.display()))?;
        (text, format!("--token-secret-file {}", path.display()))
    } else {
        match std::env::var(SECRET_ENV) {
            Ok(text) if !text.trim().is_empty() => (text.into_bytes(), SECRET_ENV.to_owned()),
            _ => return Ok(ScopedTokens::random()),
        }
    };
    let secret = secret.trim_ascii();
    ScopedTokens::try_new(secret).map_err(|e| format!("{source}: {e}"))
}

/// The environment variable `offstage serve` reads tokens from.
pub(super) const TOKENS_ENV: &str = "OFFSTAGE_TOKENS";

/// The tokens of `--token`, every `--token-file` and `OFFSTAGE_TOKENS`, together.
fn all_tokens(
    mut tokens: Vec<(Role, String)>,
    files: &[std::path::PathBuf],
) -> Result<Vec<(Role, String)>, String> {
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
        let found = Tokens::parse_file(&text, &path.display().to_string())?;
        if found.is_empty() {
            // An empty file would leave the server open without a word: refuse instead.
            return Err(format!(
                "--token-file {} has no tokens: add ROLE:SECRET lines, or leave the flag out",
                path.display()
            ));
        }
        tokens.extend(found);
    }
    match std::env::var(TOKENS_ENV) {
        Ok(text) if !text.trim().is_empty() => tokens.extend(Tokens::parse_env(&text, TOKENS_ENV)?),
        _ => {}
    }
    Ok(tokens)
}
