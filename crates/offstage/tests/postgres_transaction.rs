//! Launching inside the app's own PostgreSQL transaction: a rollback leaves no task, a commit
//! starts it. Runs when `OFFSTAGE_TEST_POSTGRES` names a database; ignored otherwise.

#![cfg(feature = "postgres")]

use std::time::Duration;

use offstage::testing::conformance::{runtime_with, Backend, PostgresBackend};
use offstage::{ErrorKind, Status};
use serde_json::json;
use sqlx::Connection;

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_launched_in_a_transaction_exists_only_if_it_commits() {
    let backend = PostgresBackend::from_env();
    let database = backend.new_database();
    let rt = runtime_with(&backend, &database, |b| b).await;
    // The app's own connection, on the same schema, and its own table.
    let mut app = sqlx::PgConnection::connect(&database).await.unwrap();
    sqlx::query("CREATE TABLE orders (id bigint PRIMARY KEY)")
        .execute(&mut app)
        .await
        .unwrap();

    let mut tx = app.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rolled_back = rt
        .launch_json("test.echo", json!("order 1"))
        .in_transaction(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        rt.get(rolled_back.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let mut tx = app.begin().await.unwrap();
    sqlx::query("INSERT INTO orders VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let committed = rt
        .launch_json("test.echo", json!("order 2"))
        .in_transaction(&mut tx)
        .await
        .unwrap();
    assert_eq!(
        rt.get(committed.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "not visible before the commit"
    );
    tx.commit().await.unwrap();
    let record = tokio::time::timeout(Duration::from_secs(10), committed.wait())
        .await
        .expect("the commit's notice wakes a node to claim it")
        .unwrap();
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.return_value, Some(json!("order 2")));
    assert!(rt.list(&Default::default()).await.unwrap().len() == 1);

    // A connection on another schema is refused before anything is written.
    let mut elsewhere = sqlx::PgConnection::connect(&backend.url).await.unwrap();
    let error = rt
        .launch_json("test.echo", json!("lost"))
        .in_transaction(&mut elsewhere)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(error.message().contains("search_path"), "{error}");
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn launching_in_a_transaction_needs_a_runtime_on_postgres() {
    let backend = PostgresBackend::from_env();
    let sqlite = offstage::testing::conformance::SqliteBackend;
    let rt = runtime_with(&sqlite, &sqlite.new_database(), |b| b).await;
    let mut conn = sqlx::PgConnection::connect(&backend.url).await.unwrap();
    let error = rt
        .launch_json("test.echo", json!(1))
        .in_transaction(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(
        error.message().contains("RuntimeBuilder::postgres"),
        "{error}"
    );
}
