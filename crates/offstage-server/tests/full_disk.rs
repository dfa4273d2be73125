//! A full disk under a real `offstage serve`: its SQLite file on a small tmpfs that a filler
//! file fills. Launches get 503 `storage_full` with `Retry-After` (not 500 "internal"),
//! readiness says not ready while liveness stays up, the server recovers by itself when the
//! filler is deleted, and every launch that was answered 201 is in the store, ended, after a
//! SIGKILL and a restart.
//!
//! Needs root to mount the tmpfs (the tests run as root here); skips loudly otherwise.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, message, Api, Server};

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("offstage-full-{}", uuid_ish()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(error) => error.to_string(),
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: the full-disk test needs to mount a tmpfs (run it as root, \
                     or in a container with CAP_SYS_ADMIN): {why} ***\n"
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn uuid_ish() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Writes `path` until the filesystem has no space left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk) {
            assert_eq!(error.raw_os_error(), Some(28), "ENOSPC, not {error}");
            break;
        }
    }
    // The last partial chunk too, byte-sized.
    while file.write_all(&[0]).is_ok() {}
    let _ = file.sync_all();
}

async fn launch(api: &Api, n: usize) -> reqwest::Response {
    api.request(Method::POST, "/api/tasks")
        .json(&json!({ "name": "demo.echo", "args": { "value": format!("{n}:{}", "x".repeat(4000)) } }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_storage_full_not_ready_and_recovers_when_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("8m") else {
        return;
    };
    let db = tmpfs.dir.join("offstage.db");
    let db = db.to_str().unwrap();
    let server = Server::start(db, &[]);
    let api = Api::new(&server, None);
    let (status, _) = common::call(&api, Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "ready before the disk fills");

    // Some tasks while there is room.
    let mut acknowledged: Vec<String> = Vec::new();
    for n in 0..20 {
        let response = launch(&api, n).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let task: Value = response.json().await.unwrap();
        acknowledged.push(task["id"].as_str().unwrap().to_owned());
    }

    let filler = tmpfs.dir.join("filler");
    fill(&filler);
    // Launch until the store has used whatever room its files had left: each answer is 201
    // (kept) or 503 storage_full, never anything else.
    let mut full = None;
    for n in 20..5_000 {
        let response = launch(&api, n).await;
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::CREATED => acknowledged.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(code(&body), "storage_full", "{body}");
                assert!(message(&body).contains("free space"), "{body}");
                let retry_after = retry_after.expect("a Retry-After header");
                assert!(retry_after.to_str().unwrap().parse::<u32>().unwrap() > 0);
                full = Some(n);
                break;
            }
            other => panic!("launch {n} on a full disk: {other} {body}"),
        }
    }
    assert!(full.is_some(), "the store never reported the full disk");

    // Live, but not ready; reads still work.
    let (status, body) = common::call(&api, Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "storage_full", "{body}");
    let (status, _) = common::call(&api, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = common::call(&api, Method::GET, "/api/tasks?limit=5", None).await;
    assert_eq!(status, StatusCode::OK);
    // Still full on a second try: no launch slips in.
    let response = launch(&api, 9_999).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Free the space: the same server takes work again, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = common::call(&api, Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "ready once space is freed: {body}");
    for n in 10_000..10_020 {
        let response = launch(&api, n).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "after freeing space"
        );
        let task: Value = response.json().await.unwrap();
        acknowledged.push(task["id"].as_str().unwrap().to_owned());
    }

    // Every acknowledged launch is in the store and ends `completed` (those that ended while
    // the disk was full record it once there is space), also after a SIGKILL and a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &acknowledged {
        loop {
            let (status, task) =
                common::call(&api, Method::GET, &format!("/api/tasks/{id}"), None).await;
            assert_eq!(status, StatusCode::OK, "{id}: {task}");
            if task["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never completed: {task}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(server); // SIGKILL
    let server = Server::start(db, &[]);
    let api = Api::new(&server, None);
    for id in &acknowledged {
        let (status, task) =
            common::call(&api, Method::GET, &format!("/api/tasks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{id} after a restart: {task}");
        assert_eq!(task["status"], "completed", "{id} after a restart: {task}");
    }
    eprintln!(
        "full disk: {} launches acknowledged, the first refused was #{}",
        acknowledged.len(),
        full.unwrap()
    );
}
