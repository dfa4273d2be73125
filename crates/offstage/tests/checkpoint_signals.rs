//! `Store::save_checkpoint` settles the signals the task received, in the same step, on both
//! stores: an attempt that saved a checkpoint after receiving a signal got past it, so a later
//! attempt does not receive it again. The signal rows are written with plain SQL (the signals'
//! own store steps are not this test's subject); everything else goes through the store.
//! The PostgreSQL test is ignored, with the reason, unless `OFFSTAGE_TEST_POSTGRES` was set at
//! build time.

use chrono::Utc;
use offstage::store::{NodeInfo, Store};
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{NodeId, Status, TaskId, TaskRecord};

/// A live node and a task running on it, in `store`.
async fn running_task(store: &dyn Store) -> (NodeId, TaskRecord) {
    let node = NodeInfo {
        id: NodeId::new(),
        host: "here".into(),
        pid: std::process::id(),
        started_at: Utc::now(),
    };
    store.register_node(&node).await.unwrap();
    let mut task = offstage::testing::sample_record(TaskId::new());
    task.status = Status::Running;
    task.return_value = None;
    task.finished_at = None;
    task.started_at = Some(Utc::now());
    task.attempt = 1;
    task.node = Some(node.id);
    store.launch(&task).await.unwrap();
    (node.id, task)
}

#[tokio::test]
async fn sqlite_a_checkpoint_settles_the_signals_the_task_received() {
    let path = SqliteBackend.new_database();
    let store = SqliteBackend.open(&path).await;
    let (node, task) = running_task(&*store).await;
    let (other, _) = running_task(&*store).await;
    let elsewhere = offstage::testing::sample_record(TaskId::new()).id;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let insert = |task: TaskId, name: &str, received: bool| {
        conn.execute(
            "INSERT INTO offstage_signals (task_id, name, payload, sent_at, received_attempt, \
             received_at) VALUES (?1, ?2, 'true', 1, ?3, ?4)",
            rusqlite::params![
                task.as_uuid().as_bytes().to_vec(),
                name,
                received.then_some(1),
                received.then_some(2)
            ],
        )
        .unwrap();
    };
    insert(task.id, "approve", true);
    insert(task.id, "later", false);
    insert(elsewhere, "approve", true);
    let settled = || -> Vec<(String, bool)> {
        conn.prepare("SELECT name, settled FROM offstage_signals ORDER BY seq")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };

    // Refused (another node's write): nothing is settled.
    assert!(!store
        .save_checkpoint(task.id, other, "1", Utc::now())
        .await
        .unwrap());
    assert!(settled().iter().all(|(_, settled)| !settled));

    assert!(store
        .save_checkpoint(task.id, node, "1", Utc::now())
        .await
        .unwrap());
    assert_eq!(
        settled(),
        [
            ("approve".to_owned(), true),
            ("later".to_owned(), false),
            ("approve".to_owned(), false)
        ],
        "only the received signal of this task"
    );
}

#[cfg(feature = "postgres")]
#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn postgres_a_checkpoint_settles_the_signals_the_task_received() {
    use offstage::testing::conformance::PostgresBackend;

    let backend = PostgresBackend::from_env();
    let url = backend.new_database();
    let store = backend.open(&url).await;
    let (node, task) = running_task(&*store).await;
    let (other, _) = running_task(&*store).await;
    let elsewhere = TaskId::new();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (id, name, received) in [
        (task.id, "approve", true),
        (task.id, "later", false),
        (elsewhere, "approve", true),
    ] {
        sqlx::query(
            "INSERT INTO offstage_signals (task_id, name, payload, sent_at, received_attempt, \
             received_at) VALUES ($1, $2, 'true', now(), $3, CASE WHEN $4 THEN now() END)",
        )
        .bind(id.as_uuid())
        .bind(name)
        .bind(received.then_some(1i32))
        .bind(received)
        .execute(&pool)
        .await
        .unwrap();
    }
    let settled = || async {
        sqlx::query_as::<_, (String, bool)>(
            "SELECT name, settled FROM offstage_signals ORDER BY seq",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };

    assert!(!store
        .save_checkpoint(task.id, other, "1", Utc::now())
        .await
        .unwrap());
    assert!(settled().await.iter().all(|(_, settled)| !settled));

    assert!(store
        .save_checkpoint(task.id, node, "1", Utc::now())
        .await
        .unwrap());
    assert_eq!(
        settled().await,
        [
            ("approve".to_owned(), true),
            ("later".to_owned(), false),
            ("approve".to_owned(), false)
        ],
        "only the received signal of this task"
    );
    pool.close().await;
}
