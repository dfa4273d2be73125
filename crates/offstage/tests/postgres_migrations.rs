//! What migrating a PostgreSQL schema does to the data already in it, on the database
//! `OFFSTAGE_TEST_POSTGRES` names. Without the variable at build time it is ignored, with the
//! reason (`build.rs` sets `offstage_test_postgres`).

#![cfg(feature = "postgres")]

use std::time::Duration;

use offstage::store::postgres::PostgresStore;
use offstage::store::Store;
use offstage::testing::conformance::{Backend, PostgresBackend};
use offstage::Schedule;

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_stored_with_a_timeout_in_milliseconds_read_it_in_seconds_after_migration_5() {
    let backend = PostgresBackend::from_env();
    let database = backend.new_database();
    let store = PostgresStore::open(&database).await.unwrap();
    for name in ["with-timeout", "without"] {
        let schedule = Schedule::new(name, "* * * * *", "t");
        store
            .put_schedule(&schedule, chrono::Utc::now())
            .await
            .unwrap();
    }
    // The options as schema version 4 wrote them: the timeout in milliseconds, under `timeout`.
    let old = |timeout: &str| {
        format!(
            r#"{{"key":null,"owner":null,"priority":3,"timeout":{timeout},"run_at":null,"isolated":null,"on_conflict":null}}"#
        )
    };
    for (name, timeout) in [("with-timeout", "90500"), ("without", "null")] {
        sqlx::query("UPDATE offstage_schedules SET options = $1 WHERE name = $2")
            .bind(old(timeout))
            .bind(name)
            .execute(store.pool())
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM offstage_migrations WHERE version = 5")
        .execute(store.pool())
        .await
        .unwrap();
    drop(store);

    assert_eq!(PostgresStore::migrate(&database).await.unwrap(), (4, 5));
    let store = PostgresStore::open(&database).await.unwrap();
    let schedules = store.schedules().await.unwrap();
    let options = |name: &str| {
        schedules
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .options
            .clone()
    };
    assert_eq!(
        options("with-timeout").timeout,
        Some(Duration::from_millis(90_500))
    );
    assert_eq!(options("with-timeout").priority, Some(3));
    assert_eq!(options("without").timeout, None);
}
