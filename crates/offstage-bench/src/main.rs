//! `offstage-bench`: measures Offstage the way the peer task queues were measured.
//!
//! Run with `cargo run --release -p offstage-bench -- [--json] [--quick] [--postgres URL]`.
//! Prints a table; with `--json` the last line is one JSON object with every figure. Each
//! measurement gets a fresh SQLite database (durable: WAL, `synchronous=FULL`) in a temporary
//! directory; with `--postgres` (or `OFFSTAGE_BENCH_POSTGRES`), the `pg_` figures are taken too,
//! each on a fresh schema of that database. With `--history N`, only the history figures are
//! taken: a store filled with `N` finished tasks against an empty one (see `history.rs`). With
//! `--migrate N --postgres URL`, only the copy of a SQLite store of `N` tasks into PostgreSQL
//! and back (see `migrate.rs`).

mod fairness;
mod fanout;
mod history;
mod http;
mod isolated;
mod limiter;
mod measure;
mod migrate;
mod nodes;
#[cfg(feature = "otel")]
mod otel;
mod postgres;

/// The allocator a throughput-minded service would pick; glibc malloc showed up as ~15% of
/// the profile under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use offstage::store::sqlite::Durability;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(isolated::WORKER_FLAG) {
        // Started by the isolated measurements as a worker process.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(isolated::worker_main());
        return;
    }
    if args.first().map(String::as_str) == Some(nodes::NODE_FLAG) {
        // Started by the node-count measurements as one node.
        nodes::node_main(&args);
        return;
    }
    // Built with feature `otel`: every task's launch and attempt is an OpenTelemetry span.
    #[cfg(feature = "otel")]
    otel::install();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only = value_of("--only");
    let history = value_of("--history").map(|n| {
        n.replace('_', "").parse::<usize>().unwrap_or_else(|_| {
            eprintln!("--history takes a number of tasks, such as 1000000; got `{n}`");
            std::process::exit(2);
        })
    });
    let migrate = value_of("--migrate").map(|n| {
        n.replace('_', "").parse::<usize>().unwrap_or_else(|_| {
            eprintln!("--migrate takes a number of tasks, such as 1000000; got `{n}`");
            std::process::exit(2);
        })
    });
    let postgres = value_of("--postgres").or_else(|| std::env::var("OFFSTAGE_BENCH_POSTGRES").ok());
    if let Some(unknown) = args.iter().enumerate().find(|(i, a)| {
        !matches!(
            a.as_str(),
            "--json" | "--quick" | "--only" | "--postgres" | "--history" | "--migrate"
        ) && !matches!(
            args.get(i.wrapping_sub(1)).map(String::as_str),
            Some("--only" | "--postgres" | "--history" | "--migrate")
        )
    }) {
        eprintln!(
            "unknown argument `{}`; usage: offstage-bench [--json] [--quick] [--only METRIC-PREFIX] \
             [--postgres URL] [--history N] [--migrate N --postgres URL]",
            unknown.1
        );
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("offstage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    let results = match (history, migrate) {
        // The copy into PostgreSQL and back alone.
        (_, Some(n)) => {
            let Some(url) = postgres.as_deref() else {
                eprintln!("--migrate copies into PostgreSQL: give --postgres URL as well");
                std::process::exit(2);
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(migrate::figures(&dir, n, url))
        }
        // The history figures alone: filling the store takes most of the run.
        (Some(n), None) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(history::figures(&dir, n, quick)),
        (None, None) => run(&dir, quick, only.as_deref(), postgres.as_deref()),
    };
    if std::env::var_os("OFFSTAGE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    println!("{:<38} {:>12}  target", "metric", "value");
    for (name, value, target) in &results {
        println!("{name:<38} {value:>12.3}  {target}");
    }
    if json {
        let object: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, value, _)| (name.to_string(), serde_json::json!(value)))
            .collect();
        println!("{}", serde_json::Value::Object(object));
    }
}

fn run(
    dir: &std::path::Path,
    quick: bool,
    only: Option<&str>,
    postgres: Option<&str>,
) -> Vec<(&'static str, f64, &'static str)> {
    let wanted = |metric: &str| only.is_none_or(|prefix| metric.starts_with(prefix));
    let db = |name: &str| -> PathBuf { dir.join(format!("{name}.db")) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = if quick { 20_000 } else { 100_000 };
    let sleepers = if quick { 20_000 } else { 100_000 };
    let mut out = Vec::new();
    if wanted("idle") {
        let idle = rt.block_on(measure::idle_rss(&db("idle")));
        out.push(("idle_rss_mib", idle, "≤ 20"));
    }
    if wanted("commit") {
        let (p50, p99) = measure::commit_latency(&db("commit"), 500);
        out.push(("commit_full_p50_ms", p50, "disk floor"));
        out.push(("commit_full_p99_ms", p99, "disk floor"));
    }
    if wanted("throughput") {
        let throughput = rt.block_on(measure::throughput(&db("throughput"), n, 1_000));
        out.push(("throughput_tasks_per_s", throughput, "≥ 50,000"));
        let throughput = rt.block_on(measure::throughput(&db("throughput4k"), n, 4_000));
        out.push(("throughput_4000_in_flight_tasks_per_s", throughput, "-"));
    }
    if wanted("launch") {
        let (p50, p99) = rt.block_on(measure::launch_latency(
            &db("launch"),
            500,
            Durability::Full,
        ));
        out.push(("launch_p50_ms", p50, "≤ 0.3"));
        out.push(("launch_p99_ms", p99, "≤ 1"));
        let normal = db("launch_normal");
        let (p50, p99) = rt.block_on(measure::launch_latency(&normal, 500, Durability::Normal));
        out.push(("launch_sync_normal_p50_ms", p50, "-"));
        out.push(("launch_sync_normal_p99_ms", p99, "-"));
    }
    if wanted("fanout") {
        let (fanned, plain) = rt.block_on(fanout::fanout(
            &db("fanout"),
            1_000,
            if quick { 3 } else { 9 },
        ));
        out.push(("fanout_1000_children_ms", fanned, "-"));
        out.push(("fanout_1000_plain_launches_ms", plain, "-"));
        out.push(("fanout_ratio", fanned / plain, "≤ 2"));
    }
    if wanted("state") {
        let (p50, p99) = rt.block_on(measure::state_event_latency(&db("state"), 2_000));
        out.push(("state_event_p50_ms", p50, "≤ 0.5"));
        out.push(("state_event_p99_ms", p99, "≤ 1"));
    }
    if wanted("kill") {
        let (p50, p99) = rt.block_on(measure::kill_cooperative(&db("kill"), 200));
        out.push(("kill_coop_p50_ms", p50, "≤ 5"));
        out.push(("kill_coop_p99_ms", p99, "-"));
    }
    if wanted("sse") {
        let (p50, p99) = rt.block_on(http::sse_state_latency(&db("sse"), 2_000));
        out.push(("sse_state_p50_ms", p50, "≤ 0.5"));
        out.push(("sse_state_p99_ms", p99, "≤ 2"));
    }
    if wanted("http") {
        let launches = if quick { 5_000 } else { 20_000 };
        let rate = rt.block_on(http::http_launch_rate(&db("http"), launches, 64));
        out.push(("http_launch_per_s", rate, "-"));
    }
    if wanted("kill_hard") || wanted("isolated") {
        let (p50, p99) = rt.block_on(isolated::kill_hard(
            &db("kill_hard"),
            if quick { 20 } else { 100 },
        ));
        out.push(("kill_hard_p50_ms", p50, "≤ 5"));
        out.push(("kill_hard_p99_ms", p99, "≤ 20"));
        let (p50, p99) = rt.block_on(isolated::launch_warm(
            &db("isolated"),
            if quick { 50 } else { 200 },
        ));
        out.push(("isolated_launch_p50_ms", p50, "-"));
        out.push(("isolated_launch_p99_ms", p99, "-"));
    }
    if wanted("shared") {
        let each = if quick { 20 } else { 50 };
        let (rate, p50) = rt.block_on(measure::shared_updates(&db("shared"), 100, each));
        out.push(("shared_contended_updates_per_s", rate, "-"));
        out.push(("shared_update_p50_ms", p50, "-"));
    }
    if wanted("checkpoint") {
        let (n, each) = if quick { (200, 20) } else { (1_000, 50) };
        let (p50, p99, rate) =
            rt.block_on(measure::checkpoint_saves(&db("checkpoint"), n, 100, each));
        out.push(("checkpoint_save_p50_ms", p50, "disk floor"));
        out.push(("checkpoint_save_p99_ms", p99, "-"));
        out.push(("checkpoint_saves_per_s_100_tasks", rate, "-"));
    }
    if wanted("dashboard") {
        for (metric, p50) in rt.block_on(http::dashboard_queries(&db("dashboard"), n, 200)) {
            out.push((metric, p50, "-"));
        }
    }
    if wanted("fairness") {
        let (backlog, samples) = if quick { (20_000, 50) } else { (100_000, 200) };
        let settings: [(u32, [&'static str; 6]); 2] = [
            (
                32,
                [
                    "fairness_idle_p50_ms",
                    "fairness_idle_p99_ms",
                    "fairness_key_b_behind_a_p50_ms",
                    "fairness_key_b_behind_a_p99_ms",
                    "fairness_ratio_p50",
                    "fairness_a_still_queued",
                ],
            ),
            (
                1_000,
                [
                    "fairness_all_slots_idle_p50_ms",
                    "fairness_all_slots_idle_p99_ms",
                    "fairness_all_slots_key_b_behind_a_p50_ms",
                    "fairness_all_slots_key_b_behind_a_p99_ms",
                    "fairness_all_slots_ratio_p50",
                    "fairness_all_slots_a_still_queued",
                ],
            ),
        ];
        for (i, (per_key, names)) in settings.into_iter().enumerate() {
            let store = rt
                .block_on(offstage::store::sqlite::SqliteStore::open(db(&format!(
                    "fairness{i}"
                ))))
                .unwrap();
            let result = rt.block_on(fairness::fairness(
                std::sync::Arc::new(store),
                per_key,
                backlog,
                samples,
            ));
            out.extend(fairness::rows(&result, names));
        }
        match postgres {
            Some(url) => {
                let pg: [(u32, [&'static str; 6]); 2] = [
                    (
                        32,
                        [
                            "fairness_pg_idle_p50_ms",
                            "fairness_pg_idle_p99_ms",
                            "fairness_pg_key_b_behind_a_p50_ms",
                            "fairness_pg_key_b_behind_a_p99_ms",
                            "fairness_pg_ratio_p50",
                            "fairness_pg_a_still_queued",
                        ],
                    ),
                    (
                        1_000,
                        [
                            "fairness_pg_all_slots_idle_p50_ms",
                            "fairness_pg_all_slots_idle_p99_ms",
                            "fairness_pg_all_slots_key_b_behind_a_p50_ms",
                            "fairness_pg_all_slots_key_b_behind_a_p99_ms",
                            "fairness_pg_all_slots_ratio_p50",
                            "fairness_pg_all_slots_a_still_queued",
                        ],
                    ),
                ];
                for (per_key, names) in pg {
                    let result = rt.block_on(postgres::fairness(url, per_key, backlog, samples));
                    out.extend(fairness::rows(&result, names));
                }
            }
            None => eprintln!(
                "PostgreSQL fairness figures skipped: pass --postgres URL or set \
                 OFFSTAGE_BENCH_POSTGRES"
            ),
        }
    }
    if wanted("limiter") {
        // One limiter at 500/s (or OFFSTAGE_BENCH_LIMITER_RATE), burst 10, acquired by two
        // nodes on one store: 60 s (10 s with --quick), 4 callers on each node.
        let run = std::time::Duration::from_secs(if quick { 10 } else { 60 });
        let rate: f64 = std::env::var("OFFSTAGE_BENCH_LIMITER_RATE")
            .ok()
            .and_then(|rate| rate.parse().ok())
            .unwrap_or(500.0);
        let path = db("limiter");
        let stores = rt.block_on(async {
            let open = || async {
                let store = offstage::store::sqlite::SqliteStore::open(&path)
                    .await
                    .unwrap();
                std::sync::Arc::new(store) as std::sync::Arc<dyn offstage::store::Store>
            };
            [open().await, open().await]
        });
        let got = rt.block_on(limiter::two_nodes(stores, rate, 10, 4, run));
        out.push(("limiter_sqlite_acquisitions_per_s", got.per_s, "500"));
        out.push((
            "limiter_sqlite_achieved_over_configured",
            got.ratio,
            "0.95–1.05",
        ));
        out.push(("limiter_sqlite_node_a_per_s", got.per_node[0], "-"));
        out.push(("limiter_sqlite_node_b_per_s", got.per_node[1], "-"));
        if let Some(url) = postgres {
            let (db, schema) = postgres::schema_url(url);
            let got = rt.block_on(async {
                let open = || async {
                    let store = offstage::store::postgres::PostgresStore::open(&db)
                        .await
                        .unwrap();
                    std::sync::Arc::new(store) as std::sync::Arc<dyn offstage::store::Store>
                };
                let stores = [open().await, open().await];
                let got = limiter::two_nodes(stores, rate, 10, 4, run).await;
                postgres::drop_schema(url, &schema).await;
                got
            });
            out.push(("limiter_pg_acquisitions_per_s", got.per_s, "500"));
            out.push((
                "limiter_pg_achieved_over_configured",
                got.ratio,
                "0.95–1.05",
            ));
            out.push(("limiter_pg_node_a_per_s", got.per_node[0], "-"));
            out.push(("limiter_pg_node_b_per_s", got.per_node[1], "-"));
        }
    }
    if let Some(url) = postgres.filter(|_| wanted("nodes")) {
        // CPU per task by node count, without and with one all-events subscriber (see
        // `nodes.rs`). Names are made per row: a bench binary may leak a few strings.
        let tasks = if quick { 8_000 } else { 40_000 };
        for subscriber in [false, true] {
            for nodes in 1..=4 {
                let got = nodes::measure(url, nodes, tasks, subscriber);
                let prefix = if subscriber { "nodes_sub" } else { "nodes" };
                let mut row = |what: &str, value: f64, target: &'static str| {
                    let name: &'static str =
                        Box::leak(format!("{prefix}_{nodes}_{what}").into_boxed_str());
                    out.push((name, value, target));
                };
                row("tasks_per_s", got.tasks_per_s, "-");
                row("cpu_us_per_task", got.node_cpu_us_per_task, "≤ 1.2× 1 node");
                row("pg_cpu_us_per_task", got.pg_cpu_us_per_task, "-");
                row(
                    "notify_payloads_per_task",
                    got.notify_payloads_per_task,
                    "-",
                );
                row("notify_bytes_per_task", got.notify_bytes_per_task, "-");
            }
        }
    }
    match postgres {
        Some(url) if wanted("pg") => {
            let n = if quick { 20_000 } else { 100_000 };
            let rate = rt.block_on(postgres::throughput(url, 1, n, 1_000));
            out.push(("pg_throughput_tasks_per_s", rate, "≥ 20,000"));
            for (nodes, name) in [
                (1, "pg_scaling_1_node_tasks_per_s"),
                (2, "pg_scaling_2_nodes_tasks_per_s"),
                (3, "pg_scaling_3_nodes_tasks_per_s"),
            ] {
                let rate = rt.block_on(postgres::throughput(url, nodes, n, 1_000));
                out.push((name, rate, "-"));
            }
        }
        Some(_) => {}
        None if wanted("pg") => eprintln!(
            "PostgreSQL figures skipped: pass --postgres URL or set OFFSTAGE_BENCH_POSTGRES"
        ),
        None => {}
    }
    drop(rt);
    if wanted("sleeping") {
        // Last, in a runtime of its own: it leaves 100,000 tasks asleep.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (rss, count) = rt.block_on(measure::sleeping_rss(&db("sleeping"), sleepers));
        let name = if count == 100_000 {
            "sleeping_100k_rss_mib"
        } else {
            "sleeping_20k_rss_mib"
        };
        out.push((name, rss, "≤ 500 (100k)"));
        rt.shutdown_background();
    }
    out
}
