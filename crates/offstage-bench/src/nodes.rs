//! What nodes cost each other: the same no-op tasks run by 1, 2, 3 and 4 node processes on one
//! PostgreSQL database, each node launching its share and running what it claims. Measured as
//! cost, not only rate, since two cores cannot show ten machines:
//!
//! - CPU time (user + system) of the node processes per task, read from `/proc/PID/stat`
//!   between the start signal and the last task's completion;
//! - CPU time of the PostgreSQL backends serving those nodes (found by their
//!   `application_name` in `pg_stat_activity`) per task: the database's own work, without its
//!   background writers;
//! - `NOTIFY` payloads and bytes per task, as counted by each node's store
//!   ([`offstage::store::postgres::PostgresStore::notice_traffic`]).
//!
//! With `subscriber`, node 0 also reads every event (`rt.events()`, what `/api/events` and
//! the dashboard read), as a node serving a dashboard would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offstage::store::postgres::PostgresStore;
use offstage::{Context, Runtime, TaskError};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::Semaphore;

/// The first argument of a node process started by [`measure`].
pub const NODE_FLAG: &str = "--bench-node";

/// The `application_name` the nodes' connections carry, so their backends can be found.
const APPLICATION: &str = "offstage-bench-node";

/// Linux reports process times in ticks of 1/100 s (`USER_HZ`) on every mainstream build.
const TICKS_PER_S: f64 = 100.0;

/// One run's figures.
#[derive(Debug)]
pub struct NodesFigures {
    pub tasks_per_s: f64,
    /// The node processes' CPU time per task, all nodes together.
    pub node_cpu_us_per_task: f64,
    /// The PostgreSQL backends' CPU time per task.
    pub pg_cpu_us_per_task: f64,
    pub notify_payloads_per_task: f64,
    pub notify_bytes_per_task: f64,
}

async fn noop(_ctx: Context, _args: Value) -> Result<(), TaskError> {
    Ok(())
}

/// Runs `tasks` no-op tasks, split evenly, through `nodes` node processes on a fresh schema of
/// the database at `url`.
pub fn measure(url: &str, nodes: usize, tasks: usize, subscriber: bool) -> NodesFigures {
    let (db, schema) = crate::postgres::schema_url(url);
    let db = format!("{db}&application_name={APPLICATION}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(PostgresStore::migrate(&db)).unwrap();
    let share = tasks / nodes;
    let exe = std::env::current_exe().expect("the bench's own executable");
    let mut children: Vec<(Child, ChildStdin, BufReader<ChildStdout>)> = (0..nodes)
        .map(|i| {
            let mut command = Command::new(&exe);
            command
                .args([NODE_FLAG, &db, &share.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            if subscriber && i == 0 {
                command.arg("--subscribe");
            }
            let mut child = command.spawn().expect("starting a node process");
            let stdin = child.stdin.take().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            (child, stdin, stdout)
        })
        .collect();
    for (_, _, stdout) in &mut children {
        assert_eq!(read_line(stdout), "ready", "a node did not start");
    }
    let node_pids: Vec<u32> = children.iter().map(|(child, ..)| child.id()).collect();
    let (done, elapsed, node_cpu, pg_cpu) = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&format!(
            "{}&application_name=offstage-bench-watcher",
            crate::postgres::schema_url_of(url, &schema)
        ))
        .await
        .unwrap();
        let backends_before = backend_times(&mut conn).await;
        let nodes_before: f64 = node_pids.iter().map(|&pid| cpu_s(pid)).sum();
        let start = Instant::now();
        for (_, stdin, _) in &mut children {
            writeln!(stdin, "go").unwrap();
        }
        let mut done = 0;
        while done < share * nodes {
            tokio::time::sleep(Duration::from_millis(100)).await;
            done = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM offstage_tasks WHERE status = 'completed'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap() as usize;
        }
        let elapsed = start.elapsed();
        let nodes_after: f64 = node_pids.iter().map(|&pid| cpu_s(pid)).sum();
        let backends_after = backend_times(&mut conn).await;
        let pg: f64 = backends_after
            .iter()
            .map(|(pid, after)| {
                after
                    - backends_before
                        .iter()
                        .find(|(p, _)| p == pid)
                        .map_or(0.0, |(_, before)| *before)
            })
            .sum();
        (done, elapsed, nodes_after - nodes_before, pg)
    });
    let (mut payloads, mut bytes) = (0u64, 0u64);
    for (mut child, mut stdin, mut stdout) in children {
        writeln!(stdin, "stop").unwrap();
        let traffic: Value = serde_json::from_str(&read_line(&mut stdout)).unwrap();
        payloads += traffic["sent_payloads"].as_u64().unwrap();
        bytes += traffic["sent_bytes"].as_u64().unwrap();
        child.wait().unwrap();
    }
    rt.block_on(crate::postgres::drop_schema(url, &schema));
    let per_task = |x: f64| x / done as f64;
    NodesFigures {
        tasks_per_s: done as f64 / elapsed.as_secs_f64(),
        node_cpu_us_per_task: per_task(node_cpu) * 1e6,
        pg_cpu_us_per_task: per_task(pg_cpu) * 1e6,
        notify_payloads_per_task: per_task(payloads as f64),
        notify_bytes_per_task: per_task(bytes as f64),
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("reading a node's output");
    line.trim().to_owned()
}

/// User + system CPU seconds of process `pid` so far (0 once it is gone).
fn cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from field 3 (state) on: utime
    // and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_S
}

/// The nodes' PostgreSQL backends and their CPU seconds so far.
async fn backend_times(conn: &mut sqlx::PgConnection) -> Vec<(i32, f64)> {
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(APPLICATION)
            .fetch_all(conn)
            .await
            .unwrap();
    pids.into_iter()
        .map(|pid| (pid, cpu_s(pid as u32)))
        .collect()
}

/// A node process: `--bench-node URL TASKS [--subscribe]`. Says `ready` once registered,
/// launches its tasks on `go`, and on `stop` prints its notice traffic as JSON and exits.
pub fn node_main(args: &[String]) {
    let url = args[1].clone();
    let tasks: usize = args[2].parse().unwrap();
    let subscribe = args.iter().any(|a| a == "--subscribe");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(PostgresStore::open(&url).await.unwrap());
        let runtime = Runtime::builder()
            .store(Arc::clone(&store) as Arc<dyn offstage::store::Store>)
            .task("noop", noop)
            .max_concurrency(1_000)
            .build()
            .await
            .unwrap();
        if subscribe {
            let mut events = runtime.events();
            tokio::spawn(async move {
                let mut seen = 0u64;
                while events.recv().await.is_ok() {
                    seen += 1;
                }
                seen
            });
        }
        let mut lines = BufReader::new(std::io::stdin()).lines();
        println!("ready");
        let go = tokio::task::spawn_blocking(move || {
            let go = lines.next();
            (go, lines)
        });
        let (go, mut lines) = go.await.unwrap();
        assert_eq!(go.unwrap().unwrap(), "go");
        // Launches as a web app's handlers would: many at once, each awaited until durable.
        let permits = Arc::new(Semaphore::new(200));
        for _ in 0..tasks {
            let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
            let runtime = runtime.clone();
            tokio::spawn(async move {
                runtime.launch_json("noop", Value::Null).await.unwrap();
                drop(permit);
            });
        }
        let stop = tokio::task::spawn_blocking(move || lines.next());
        let _ = stop.await;
        let traffic = store.notice_traffic();
        println!(
            "{}",
            serde_json::json!({
                "sent_payloads": traffic.sent_payloads,
                "sent_bytes": traffic.sent_bytes,
            })
        );
        runtime.shutdown().await.unwrap();
    });
}
