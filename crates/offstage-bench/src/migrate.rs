//! `--migrate N --postgres URL`: how long `offstage migrate --from --to` takes to move a SQLite
//! store of `N` finished tasks, each with one log line, into a fresh PostgreSQL schema, and
//! back into a new SQLite file. The store is filled through the real launch path; the copies
//! are the library's `DatabaseCopy`, which the command drives.

use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use offstage::store::copy::DatabaseCopy;
use offstage::{Context, Retention, Runtime, TaskError};

use crate::postgres::{drop_schema, schema_url};

type Figures = Vec<(&'static str, f64, &'static str)>;

pub async fn figures(dir: &Path, n: usize, url: &str) -> Figures {
    let db = dir.join("migrate.db");
    let fill_rate = fill(&db, n).await;
    let (target, schema) = schema_url(url);
    let source = db.to_string_lossy().into_owned();
    let to_pg = time_copy(&source, &target).await;
    let back = dir.join("migrate-back.db").to_string_lossy().into_owned();
    let to_sqlite = time_copy(&target, &back).await;
    drop_schema(url, &schema).await;
    vec![
        ("migrate_tasks", n as f64, "-"),
        ("migrate_fill_tasks_per_s", fill_rate, "-"),
        ("migrate_sqlite_to_pg_s", to_pg, "-"),
        ("migrate_sqlite_to_pg_tasks_per_s", n as f64 / to_pg, "-"),
        ("migrate_pg_to_sqlite_s", to_sqlite, "-"),
        (
            "migrate_pg_to_sqlite_tasks_per_s",
            n as f64 / to_sqlite,
            "-",
        ),
    ]
}

/// Fills `db` with `n` completed tasks, one log line each; tasks per second.
async fn fill(db: &Path, n: usize) -> f64 {
    let rt = Runtime::builder()
        .sqlite(db)
        .retention(Retention::forever())
        .max_concurrency(10_000)
        .task("migrate.ok", |ctx: Context, i: u64| async move {
            ctx.log(format!("task {i} ran"));
            Ok::<_, TaskError>(i)
        })
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    futures::stream::iter(0..n as u64)
        .map(|i| {
            let rt = rt.clone();
            async move {
                let task = rt.launch_json("migrate.ok", i.into()).await.unwrap();
                task.wait().await.unwrap();
            }
        })
        .buffer_unordered(4_000)
        .for_each(|()| async {})
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    rt.shutdown().await.unwrap();
    rate
}

/// Seconds to copy `from` into `to`, from opening both to the count check, which must match.
async fn time_copy(from: &str, to: &str) -> f64 {
    let start = Instant::now();
    let copy = DatabaseCopy::open(from, to).await.unwrap();
    let plan = copy.plan().await.unwrap();
    let report = copy.run(&plan, |_| {}).await.unwrap();
    assert!(report.matches(), "{report:?}");
    start.elapsed().as_secs_f64()
}
