//! The fault suite: real `offstage serve` processes, real files, a real PostgreSQL cluster of the
//! test's own, real SIGKILLs, bounded loops, loopback only. The figures in docs/reliability.md
//! come from these tests; each prints its own (`cargo test -p offstage-server --test faults --
//! --nocapture`).
//!
//! `OFFSTAGE_TEST_FAULTS_LONG=1` runs more rounds. The PostgreSQL case runs when
//! `OFFSTAGE_TEST_POSTGRES` is set (it starts a private cluster with the machine's
//! `initdb`/`pg_ctl`, never the machine's own); without it at build time it is ignored, with the
//! reason.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Server, BIN};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// How long a process-level outcome may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

fn long() -> bool {
    std::env::var_os("OFFSTAGE_TEST_FAULTS_LONG").is_some()
}

/// A small xorshift generator, seeded from the clock and printed, so a failing round can be
/// rerun with `OFFSTAGE_TEST_FAULTS_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("OFFSTAGE_TEST_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("faults: seed {seed} (OFFSTAGE_TEST_FAULTS_SEED={seed} repeats it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a launch loop saw: ids acknowledged with 201, and every other answer.
#[derive(Default)]
struct Seen {
    acknowledged: Mutex<Vec<String>>,
    count: AtomicUsize,
    /// `(status or 0 for no answer, body)` of launches that were not acknowledged.
    refused: Mutex<Vec<(u16, String)>>,
    reached: Notify,
}

/// `clients` loops launching `body` as fast as they are answered, until `stop` is set or
/// `max_errors` launches in a row got no 201 (the server is gone). Bounded: each loop stops
/// after `max` launches.
fn launch_load(
    url: &str,
    clients: usize,
    max: usize,
    max_errors: usize,
    body: Value,
    seen: &Arc<Seen>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let url = format!("{url}/api/tasks");
            let body = body.clone();
            let seen = Arc::clone(seen);
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut errors = 0;
                for _ in 0..max {
                    if stop.load(Ordering::Acquire) || errors >= max_errors {
                        break;
                    }
                    match http.post(&url).json(&body).send().await {
                        Ok(response) if response.status() == 201 => {
                            errors = 0;
                            let task: Value = match response.json().await {
                                Ok(task) => task,
                                // Acknowledged but the body was cut by the kill: we never
                                // learned the id, so the client cannot count on it.
                                Err(_) => continue,
                            };
                            let id = task["id"].as_str().unwrap().to_owned();
                            seen.acknowledged.lock().unwrap().push(id);
                            seen.count.fetch_add(1, Ordering::AcqRel);
                            seen.reached.notify_waiters();
                        }
                        Ok(response) => {
                            errors += 1;
                            let status = response.status().as_u16();
                            let text = response.text().await.unwrap_or_default();
                            seen.refused.lock().unwrap().push((status, text));
                        }
                        Err(error) => {
                            errors += 1;
                            seen.refused.lock().unwrap().push((0, error.to_string()));
                            // The server is down: do not spin on a closed port.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Waits until `seen` has `n` acknowledged launches.
async fn until_acknowledged(seen: &Seen, n: usize) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let reached = seen.reached.notified();
            if seen.count.load(Ordering::Acquire) >= n {
                return;
            }
            reached.await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} acknowledged launches within {DEADLINE:?}"));
}

/// Polls `GET /api/tasks/{id}` until its status is terminal (no event carries a restart).
async fn terminal(api: &Api, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let response = api
            .request(reqwest::Method::GET, &format!("/api/tasks/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged task {id} is lost");
        let task: Value = response.json().await.unwrap();
        if !matches!(task["status"].as_str(), Some("queued" | "running")) {
            return task;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "task {id} still {} after {DEADLINE:?}: {task}",
            task["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_http_launch_load_loses_no_acknowledged_launch_and_leaves_nothing_running() {
    let rounds = if long() { 25 } else { 5 };
    let mut rng = Rng::new();
    let db = SqliteBackend.new_database();
    let mut all: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut missing_total = 0;
    for round in 1..=rounds {
        let mut server = Server::start(&db, &[]);
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Short sleeps, so some tasks are queued, some running and some done at the kill.
        let body = json!({ "name": "demo.sleep", "args": { "seconds": 0.2 } });
        let loops = launch_load(&server.url, 4, 2_000, 3, body, &seen, &stop);
        // The kill comes after a random number of acknowledged launches.
        let at = 20 + rng.below(300) as usize;
        until_acknowledged(&seen, at).await;
        sigkill(&mut server.child);
        for handle in loops {
            handle.await.unwrap();
        }
        let acknowledged = seen.acknowledged.lock().unwrap().clone();

        // The same file, a new process: every acknowledged launch is there, and ends.
        let restarted = Instant::now();
        let server = Server::start(&db, &[]);
        let api = Api::new(&server, None);
        let mut missing = 0;
        for (n, id) in all.iter().chain(&acknowledged).enumerate() {
            let task = terminal(&api, id).await;
            match task["status"].as_str().unwrap() {
                "completed" => {}
                "missing" if n >= all.len() => missing += 1,
                "missing" => {}
                other => panic!("task {id} ended {other}: {task}"),
            }
        }
        let running = api.get("/api/tasks?status=running&limit=1000").await;
        assert_eq!(
            running["tasks"],
            json!([]),
            "nothing is left running: {running}"
        );
        println!(
            "faults: SIGKILL round {round}/{rounds}: killed after {} acknowledged launches \
             ({} acknowledged in all), 0 lost, {missing} missing (were running at the kill), \
             all ended {:?} after the restart",
            at,
            acknowledged.len(),
            restarted.elapsed()
        );
        missing_total += missing;
        all.extend(acknowledged);
        drop(server);
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "every acknowledged id is a new task"
    );
    println!(
        "faults: SIGKILL under load: {rounds} rounds, {} acknowledged launches, 0 lost, \
         {missing_total} missing, 0 left running, in {:?}",
        all.len(),
        started.elapsed()
    );
}

/// An `offstage worker` process serving the demo types.
fn worker_process(server: &Server, concurrency: u32) -> Child {
    Command::new(BIN)
        .args([
            "worker",
            "--name",
            "doomed",
            "--server",
            &server.url,
            "--concurrency",
            &concurrency.to_string(),
        ])
        .env("OFFSTAGE_TOKEN", "w-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_killed_with_sigkill_leaves_its_tasks_missing_at_once() {
    let rounds = if long() { 10 } else { 3 };
    let db = SqliteBackend.new_database();
    let server = Server::start_plain(
        &db,
        &[
            "--token",
            "worker:w-secret",
            "--token",
            "control:c-secret",
            "--remote-type",
            "demo.sleep",
        ],
    );
    let api = Api::new(&server, Some("c-secret"));
    let mut worst = Duration::ZERO;
    for round in 1..=rounds {
        let mut worker = worker_process(&server, 3);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                api.launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
                    .await,
            );
        }
        for id in &ids {
            api.until(id, |kind, _| kind == "state").await;
        }
        let killed = Instant::now();
        sigkill(&mut worker);
        for id in &ids {
            let lost = api.finished(id).await;
            assert_eq!(lost["status"], "missing", "{lost}");
            assert_eq!(lost["error"]["kind"], "worker_lost", "{lost}");
        }
        let took = killed.elapsed();
        worst = worst.max(took);
        println!("faults: remote worker SIGKILL round {round}/{rounds}: 3 tasks missing (worker_lost) {took:?} after the kill");
    }
    // A closed socket is noticed at once; two heartbeats (2 s) is the bound for a silent one.
    assert!(worst < Duration::from_secs(2), "{worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_worker_process_killed_with_sigkill_fails_its_task_worker_crashed() {
    let rounds = if long() { 10 } else { 3 };
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let mut worst = Duration::ZERO;
    for round in 1..=rounds {
        let id = api
            .launch(json!({ "name": "demo.spin", "args": { "seconds": 600 } }))
            .await;
        let line = api
            .until(&id, |kind, event| {
                kind == "log"
                    && event["line"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("running in isolated worker process")
            })
            .await;
        let pid: i32 = line["line"]["message"]
            .as_str()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let killed = Instant::now();
        assert!(Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success());
        let done = api.finished(&id).await;
        let took = killed.elapsed();
        worst = worst.max(took);
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(done["error"]["kind"], "worker_crashed", "{done}");
        println!(
            "faults: isolated worker SIGKILL round {round}/{rounds}: failed worker_crashed {took:?} after the kill ({})",
            done["error"]["message"]
        );
    }
    assert!(worst < Duration::from_secs(2), "{worst:?}");
    // The pool replaced the process: isolated work still runs.
    let next = api
        .launch(json!({ "name": "demo.spin", "args": { "seconds": 0.01 } }))
        .await;
    assert_eq!(api.finished(&next).await["status"], "completed");
}

/// A PostgreSQL cluster of the test's own: `initdb` in a temporary directory, on a free
/// loopback port, run as the `postgres` user (tests run as root). Stopped when dropped.
struct Cluster {
    bin: std::path::PathBuf,
    dir: String,
    port: u16,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
            .max()?;
        let dir = format!(
            "/tmp/offstage-faults-pg-{}-{}",
            std::process::id(),
            offstage::TaskId::new()
        );
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown")
            .args(["postgres:postgres", &dir])
            .status()
            .unwrap()
            .success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, dir, port };
        let data = format!("{}/data", cluster.dir);
        cluster.run(&[
            "initdb",
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn run(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl start|restart -m fast`, waiting until it accepts connections.
    fn pg_ctl(&self, action: &str) {
        let data = format!("{}/data", self.dir);
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            self.port, self.dir
        );
        let log = format!("{}/log", self.dir);
        self.run(&[
            "pg_ctl", action, "-D", &data, "-w", "-m", "fast", "-o", &options, "-l", &log,
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = format!("{}/data", self.dir);
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["stop", "-D", &data, "-m", "immediate", "-w"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_launch_load_loses_no_acknowledged_launch() {
    // It starts a private cluster of its own: the variable says PostgreSQL is installed here.
    let _ = offstage::testing::conformance::PostgresBackend::from_env();
    let cluster = Cluster::start().expect(
        "OFFSTAGE_TEST_POSTGRES is set but this machine has no /usr/lib/postgresql/*/bin/initdb \
         and pg_ctl: install PostgreSQL's server package (it starts a private cluster of its own)",
    );
    let rounds = if long() { 5 } else { 2 };
    let server = Server::start(&cluster.url(), &[]);
    let api = Api::new(&server, None);
    let mut rng = Rng::new();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = json!({ "name": "demo.sleep", "args": { "seconds": 0.05 } });
    // Errors do not stop these loops: they run through the outages, bounded by count.
    let loops = launch_load(&server.url, 4, 100_000, usize::MAX, body, &seen, &stop);
    let mut outages = Vec::new();
    for round in 1..=rounds {
        let before = seen.count.load(Ordering::Acquire);
        until_acknowledged(&seen, before + 50 + rng.below(200) as usize).await;
        let refused_before = seen.refused.lock().unwrap().len();
        let restarting = Instant::now();
        cluster.pg_ctl("restart");
        let restarted = restarting.elapsed();
        // The server serves again: more launches are acknowledged after the restart.
        let after = seen.count.load(Ordering::Acquire);
        let serving = Instant::now();
        until_acknowledged(&seen, after + 50).await;
        let refused = seen.refused.lock().unwrap().len() - refused_before;
        println!(
            "faults: PostgreSQL restart round {round}/{rounds}: pg_ctl restart -m fast took \
             {restarted:?}, {refused} launches refused meanwhile, 50 more acknowledged \
             {:?} after it",
            serving.elapsed()
        );
        outages.push(refused);
    }
    // A longer outage: the cluster stays down for two seconds (the fault's length, not a wait
    // for an event), so launches cannot just wait it out.
    let refused_before = seen.refused.lock().unwrap().len();
    cluster.pg_ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.pg_ctl("start");
    let after = seen.count.load(Ordering::Acquire);
    until_acknowledged(&seen, after + 50).await;
    let refused = seen.refused.lock().unwrap().len() - refused_before;
    println!("faults: PostgreSQL down for 2 s: {refused} launches refused meanwhile, serving again after");
    outages.push(refused);
    stop.store(true, Ordering::Release);
    for handle in loops {
        handle.await.unwrap();
    }

    // Every refusal says the store is unavailable; none is a bare 500 or a dropped connection.
    let refused = seen.refused.lock().unwrap().clone();
    for (status, body) in &refused {
        assert!(
            *status == 503 && body.contains("store"),
            "a launch during the outage got {status} {body}"
        );
    }
    let acknowledged = seen.acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let task = terminal(&api, id).await;
        assert_eq!(task["status"], "completed", "{task}");
    }
    println!(
        "faults: PostgreSQL restarts: {rounds} restarts, {} acknowledged launches, 0 lost, all \
         completed; {} refused during the outages ({outages:?} per restart), each a 503",
        acknowledged.len(),
        refused.len()
    );
}
