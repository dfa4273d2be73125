//! What the example's test files share: the app, started as a process of its own.

// Each test file uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// An `end-users` process on a free port with a database of its own, killed when dropped.
pub struct App {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

impl App {
    pub fn start() -> App {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("end-users-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_end-users"))
            .arg("127.0.0.1:0")
            .arg(dir.join("end-users.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut said = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        said.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("end-users listening on ")
            .unwrap_or_else(|| panic!("the first line names the address: {first:?}"))
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
        App { child, url, dir }
    }

    /// `GET /offstage/api/tasks/{id}` with `token` (or none): its status.
    pub async fn status_of_get(&self, id: &str, token: Option<&str>) -> u16 {
        let url = format!("{}/offstage/api/tasks/{id}", self.url);
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().status().as_u16()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
