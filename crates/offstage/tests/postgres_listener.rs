//! A node whose notice listener loses its connection listens again and keeps hearing the
//! other nodes. Runs when `OFFSTAGE_TEST_POSTGRES` names a database; ignored otherwise.

#![cfg(feature = "postgres")]

use std::time::Duration;

use offstage::testing::conformance::{runtime_with, Backend, PostgresBackend};
use offstage::testing::wait_for_event;
use offstage::EventKind;
use serde_json::json;
use sqlx::Connection;

/// The listening connections on `schema`'s channel.
async fn listeners(admin: &mut sqlx::PgConnection, schema: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
    )
    .bind(schema)
    .fetch_all(admin)
    .await
    .unwrap()
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listener_reconnects_and_hears_the_other_nodes_again() {
    let backend = PostgresBackend::from_env();
    let database = backend.new_database();
    let schema = database.rsplit('=').next().unwrap().to_owned();
    let first = runtime_with(&backend, &database, |b| b).await;
    let second = runtime_with(&backend, &database, |b| b).await;
    let mut admin = sqlx::PgConnection::connect(&backend.url).await.unwrap();

    let before = listeners(&mut admin, &schema).await;
    assert_eq!(before.len(), 2, "one listener per node");
    for pid in &before {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
    }
    // Both listen again on new connections, at once (not at the next heartbeat or poll).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = listeners(&mut admin, &schema).await;
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listeners did not come back: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut there = second.events();
    let task = first
        .launch_json("test.echo", json!("again"))
        .await
        .unwrap();
    wait_for_event(&mut there, Duration::from_secs(10), |e| {
        e.task_id == task.id() && matches!(e.kind, EventKind::Finished { .. })
    })
    .await;
}
