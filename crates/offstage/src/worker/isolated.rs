//! The child's side of process isolation: a node re-runs its own executable with
//! [`SOCKET_ENV`] set, and [`isolation_entry`] at the top of `main` (or else the first
//! [`crate::RuntimeBuilder::build`]) in that process becomes a worker serving the node over
//! that Unix socket instead of a node. It runs one task at a time, and never outlives the
//! node.

use std::io::Write as _;
use std::path::PathBuf;

use futures::StreamExt;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::session::{self, end_marker, Hello};
use crate::error::TaskError;
use crate::id::TaskId;
use crate::registry::Registry;

/// Names the Unix socket a worker process connects back to.
pub(crate) const SOCKET_ENV: &str = "OFFSTAGE_ISOLATED_SOCKET";

/// Makes this process an isolated worker if a node started it as one, and returns at once
/// otherwise. Call it first thing in `main`, before the app does anything it must do only
/// once (bind its port, run migrations, send a start-up email), as Python's
/// `multiprocessing.freeze_support` is called.
///
/// A node runs its isolated task types in worker processes that re-run the app's own
/// executable with its own arguments. `tasks` registers the task types on a builder (the
/// same function the app uses for its runtime, so the two cannot drift apart); in a worker
/// process this calls it, serves the node with those types until the node goes, and exits
/// the process without returning. In any other process it neither calls `tasks` nor does
/// anything else.
///
/// Apps that do not call it still work: the worker process then becomes a worker in
/// [`crate::RuntimeBuilder::build`], after running whatever `main` does before it.
///
/// It may be called from a plain `fn main` or inside `#[tokio::main]`: the worker runs on a
/// tokio runtime of its own, on a thread of its own.
///
/// ```no_run
/// use offstage::{Context, Runtime, RuntimeBuilder, TaskTypeOptions};
///
/// fn tasks(builder: RuntimeBuilder) -> RuntimeBuilder {
///     builder.task_with(
///         "reports.render",
///         TaskTypeOptions::default().isolated(),
///         |_ctx: Context, pages: u32| async move { Ok(pages * 2) },
///     )
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     offstage::isolation_entry(tasks); // an isolated worker never gets past this line
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
///     let runtime = tasks(Runtime::builder()).build().await?;
///     # drop((listener, runtime));
///     Ok(())
/// }
/// ```
pub fn isolation_entry(tasks: impl FnOnce(crate::RuntimeBuilder) -> crate::RuntimeBuilder) {
    let Some(socket) = asked() else { return };
    let builder = tasks(crate::Runtime::builder());
    let registry = builder.into_registry();
    // A thread of its own, so this works inside an app's tokio runtime as well as before one.
    let worker = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("offstage isolated worker: could not start tokio: {error}");
                std::process::exit(70);
            }
        };
        runtime.block_on(serve(registry, socket))
    });
    // `serve` exits the process; a panic in it must not let the app's `main` go on.
    let _ = worker.join();
    std::process::exit(70);
}

/// The socket to serve, when this process was started as an isolated worker.
pub(crate) fn asked() -> Option<PathBuf> {
    std::env::var_os(SOCKET_ENV).map(PathBuf::from)
}

/// Serves the node on `socket` with `registry`'s task types until the node goes, then exits
/// the process.
pub(crate) async fn serve(registry: Registry, socket: PathBuf) -> ! {
    // If the node dies, so does this process, even in the middle of a task that never awaits.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let stream = match UnixStream::connect(&socket).await {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!(
                "offstage: this process was started as an isolated worker, but {} is not \
                 there to connect to ({error}); it is started by an Offstage node, not by hand",
                socket.display()
            );
            std::process::exit(70);
        }
    };
    let (read, mut write) = stream.into_split();
    let lines = BufReader::new(read).lines();
    let incoming = futures::stream::unfold(lines, |mut lines| async move {
        match lines.next_line().await {
            Ok(Some(line)) => Some((line, lines)),
            _ => None,
        }
    })
    .boxed();
    let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(mut line) = to_send.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let hello = Hello {
        name: Some(format!("isolated worker {}", std::process::id())),
        concurrency: 1,
        isolated: true,
    };
    let ended = session::serve(&registry, &hello, incoming, outgoing).await;
    let _ = writer.await;
    if let Err(error) = ended {
        eprintln!("offstage isolated worker: {error}");
    }
    std::process::exit(0)
}

/// Limits the address space to what the process uses now plus `bytes`. Returns the soft limit
/// to restore afterwards.
pub(crate) fn limit_memory(bytes: u64) -> Result<u64, TaskError> {
    let failed = |e: nix::Error| {
        TaskError::new(
            "memory_limit",
            format!("could not set the task's memory limit: {e}"),
        )
    };
    let (soft, hard) = getrlimit(Resource::RLIMIT_AS).map_err(failed)?;
    let in_use = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    setrlimit(
        Resource::RLIMIT_AS,
        in_use.saturating_add(bytes).min(hard),
        hard,
    )
    .map_err(failed)?;
    Ok(soft)
}

/// Puts back the soft limit [`limit_memory`] replaced.
pub(crate) fn restore_memory(soft: u64) {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_AS) {
        let _ = setrlimit(Resource::RLIMIT_AS, soft.min(hard), hard);
    }
}

/// Tells the node that everything the task printed has been written.
pub(crate) fn mark_end(task_id: TaskId) {
    let marker = end_marker(task_id);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{marker}");
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{marker}");
    let _ = stderr.flush();
}
