//! What migrating a PostgreSQL schema does to the data already in it, on the database
//! `OFFSTAGE_TEST_POSTGRES` names. Without the variable at build time it is ignored, with the
//! reason (`build.rs` sets `offstage_test_postgres`).

#![cfg(feature = "postgres")]

use std::time::Duration;

use offstage::store::postgres::PostgresStore;
use offstage::store::Store;
use offstage::testing::conformance::{Backend, PostgresBackend};

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_schema_migrates_its_schedules_and_counts_its_tasks() {
    let backend = PostgresBackend::from_env();
    let database = backend.new_database();
    assert_eq!(
        PostgresStore::migrate_to(&database, 4).await.unwrap(),
        (0, 4)
    );
    assert_eq!(
        PostgresStore::migrate_to(&database, 4).await.unwrap(),
        (4, 4),
        "already there"
    );
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    // The options as schema version 4 wrote them: the timeout in milliseconds, under `timeout`.
    let old = |timeout: &str| {
        format!(
            r#"{{"key":null,"owner":null,"priority":3,"timeout":{timeout},"run_at":null,"isolated":null,"on_conflict":null}}"#
        )
    };
    for (name, timeout) in [("with-timeout", "90500"), ("without", "null")] {
        sqlx::query(
            "INSERT INTO offstage_schedules (name, task_name, cron, args, options, created_at, \
             updated_at) VALUES ($1, 't', '* * * * *', 'null', $2, now(), now())",
        )
        .bind(name)
        .bind(old(timeout))
        .execute(&pool)
        .await
        .unwrap();
    }
    for (name, status) in [("a", "completed"), ("a", "completed"), ("b", "queued")] {
        sqlx::query(
            "INSERT INTO offstage_tasks (id, name, args, status, launched_at, run_at) \
             VALUES ($1, $2, 'null', $3, now(), now())",
        )
        .bind(offstage::TaskId::new().as_uuid())
        .bind(name)
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let (from, to) = PostgresStore::migrate(&database).await.unwrap();
    assert_eq!(from, 4);
    assert!(to > 5, "migrated to the latest version, {to}");
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
    assert_eq!(
        store.counts().await.unwrap(),
        [
            ("a".to_owned(), offstage::Status::Completed, 2),
            ("b".to_owned(), offstage::Status::Queued, 1)
        ]
    );
}
