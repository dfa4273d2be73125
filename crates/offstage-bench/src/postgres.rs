//! The PostgreSQL figures: one node's throughput, and the same work spread over 1, 2 and 3
//! nodes on one database. Each measurement gets a schema of its own, dropped afterwards.

use std::sync::Arc;
use std::time::Instant;

use offstage::store::postgres::PostgresStore;
use offstage::{Context, Runtime, Status, TaskError};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::Semaphore;

async fn noop(_ctx: Context, _args: Value) -> Result<(), TaskError> {
    Ok(())
}

/// A fresh schema of the database at `url`, as a URL; dropped by [`drop_schema`].
pub fn schema_url(url: &str) -> (String, String) {
    let schema = format!("offstage_bench_{}", uuid::Uuid::now_v7().simple());
    (schema_url_of(url, &schema), schema)
}

/// The database at `url`, on `schema`.
pub fn schema_url_of(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options[search_path]={schema}")
}

pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// No-op tasks, launch → completed, `in_flight` at a time, spread round-robin over `nodes`
/// runtimes (each with its own store and connections, as separate processes would have) on
/// one database. Tasks per second.
pub async fn throughput(url: &str, nodes: usize, n: usize, in_flight: usize) -> f64 {
    let (db, schema) = schema_url(url);
    let mut runtimes = Vec::new();
    for _ in 0..nodes {
        let store = PostgresStore::open(&db).await.unwrap();
        runtimes.push(
            Runtime::builder()
                .store(Arc::new(store))
                .task("noop", noop)
                .max_concurrency(in_flight * 10)
                .build()
                .await
                .unwrap(),
        );
    }
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(in_flight));
    for i in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let rt = runtimes[i % nodes].clone();
        tokio::spawn(async move {
            let task = rt.launch_json("noop", Value::Null).await.unwrap();
            let record = task.wait().await.unwrap();
            assert_eq!(record.status, Status::Completed);
            drop(permit);
        });
    }
    let _all = permits.acquire_many(in_flight as u32).await.unwrap();
    let elapsed = start.elapsed();
    for rt in runtimes {
        rt.shutdown().await.unwrap();
    }
    drop_schema(url, &schema).await;
    n as f64 / elapsed.as_secs_f64()
}

/// The fairness figures (see `fairness.rs`) on a fresh schema of the database at `url`.
pub async fn fairness(
    url: &str,
    per_key: u32,
    backlog: usize,
    samples: usize,
) -> crate::fairness::Fairness {
    let (db, schema) = schema_url(url);
    let store = PostgresStore::open(&db).await.unwrap();
    let result = crate::fairness::fairness(Arc::new(store), per_key, backlog, samples).await;
    drop_schema(url, &schema).await;
    result
}
