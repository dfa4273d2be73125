//! What the real-process tests share: an `offstage serve` process on a free port.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_offstage");

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub db: String,
}

impl Server {
    /// `offstage serve --demo` with `extra` arguments.
    pub fn start(db: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra);
        Server::start_plain(db, &args)
    }

    /// `offstage serve` with only `extra` arguments (no demo task types).
    pub fn start_plain(db: &str, extra: &[&str]) -> Server {
        Server::start_at(db, "127.0.0.1:0", extra)
    }

    /// `offstage serve` on `addr` with only `extra` arguments.
    pub fn start_at(db: &str, addr: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", addr, "--db", db])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("offstage listening on ")
            .expect(&first)
            .to_owned();
        Server {
            child,
            url,
            db: db.to_owned(),
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("OFFSTAGE_SERVER", &self.url)
            .env_remove("OFFSTAGE_TOKEN")
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
