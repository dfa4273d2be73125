//! What the SQLite store does with files that are not what it expects.

use offstage::store::sqlite::SqliteStore;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::ErrorKind;

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_untouched() {
    let path = SqliteBackend.new_database();
    let junk = b"these are somebody's notes, not a database\n".repeat(200);
    std::fs::write(&path, &junk).unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt);
    assert!(
        error.message().contains("not an Offstage database"),
        "{error}"
    );
    assert!(
        error.message().contains("new file"),
        "says how to fix it: {error}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        junk,
        "the file is left as it was"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_offstage_is_refused() {
    let path = SqliteBackend.new_database();
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SchemaTooNew);
    assert!(error.message().contains("schema version 99"), "{error}");
    assert!(error.message().contains("upgrade Offstage"), "{error}");
}

#[tokio::test]
async fn reopening_keeps_the_schema_and_the_data() {
    let path = SqliteBackend.new_database();
    let store = SqliteStore::open(&path).await.unwrap();
    let record = offstage::testing::sample_record(offstage::TaskId::new());
    offstage::store::Store::launch(&store, &record)
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    let read = offstage::store::Store::get(&store, record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.id, record.id);
    assert_eq!(read.name, record.name);
}

#[tokio::test]
async fn a_database_in_a_missing_directory_says_so() {
    let path = format!("{}-missing/tasks.db", SqliteBackend.new_database());
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store);
    assert!(error.message().contains("does not exist"), "{error}");
}

/// A database as schema version 4 left it, opened by this Offstage: migration 5 reads the
/// schedules' timeouts in seconds, and migration 6 counts the tasks already there.
#[tokio::test]
async fn a_version_4_database_migrates_its_schedules_and_counts_its_tasks() {
    use offstage::store::Store;
    let path = SqliteBackend.new_database();
    SqliteStore::create_at_version(&path, 4).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    // The options as schema version 4 wrote them: the timeout in milliseconds, under `timeout`.
    let old = |timeout: &str| {
        format!(
            r#"{{"key":null,"owner":null,"priority":3,"timeout":{timeout},"run_at":null,"isolated":null,"on_conflict":null}}"#
        )
    };
    for (name, timeout) in [("with-timeout", "90500"), ("without", "null")] {
        conn.execute(
            "INSERT INTO offstage_schedules (name, task_name, cron, args, options, created_at, \
             updated_at) VALUES (?1, 't', '* * * * *', 'null', ?2, 0, 0)",
            (name, old(timeout)),
        )
        .unwrap();
    }
    for (name, status) in [("a", "completed"), ("a", "completed"), ("b", "queued")] {
        conn.execute(
            "INSERT INTO offstage_tasks (id, name, args, status, launched_at, run_at) \
             VALUES (?1, ?2, 'null', ?3, 0, 0)",
            (
                offstage::TaskId::new().as_uuid().as_bytes().to_vec(),
                name,
                status,
            ),
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&path).await.unwrap();
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
        Some(std::time::Duration::from_millis(90_500))
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
