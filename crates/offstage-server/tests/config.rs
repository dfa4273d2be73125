//! `offstage serve --config offstage.toml`, `offstage config check` and `offstage config print`:
//! real config files in a scratch directory, the real `offstage` binary, and a real server
//! asked over HTTP whether the file's settings took effect.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::Value;

use common::{Server, BIN};

/// The variables `offstage serve` reads; every command here starts without them, so that the
/// machine's environment cannot change what a test sees.
const VARIABLES: [&str; 9] = [
    "OFFSTAGE_CONFIG",
    "OFFSTAGE_DB",
    "OFFSTAGE_ADDR",
    "OFFSTAGE_TOKENS",
    "OFFSTAGE_TOKEN_SECRET",
    "OFFSTAGE_KEEP",
    "OFFSTAGE_TRACE_URL",
    "OFFSTAGE_HEARTBEAT_S",
    "OFFSTAGE_MAX_CONCURRENCY",
];

/// A scratch directory, removed with the test's databases when the test ends.
fn scratch() -> PathBuf {
    let dir = PathBuf::from(format!("{}-dir", SqliteBackend.new_database()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `offstage ARGS` in `dir`, with none of `serve`'s variables set.
fn offstage(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// Starts the server `command` runs, its log discarded.
fn start(mut command: Command, dir: &Path) -> Server {
    command.stderr(Stdio::null());
    Server::spawn(command, &dir.join("offstage.db").display().to_string())
}

/// The role the server gives `token`, or the status it refuses it with.
async fn role(server: &Server, token: Option<&str>) -> Result<String, u16> {
    let mut request = reqwest::Client::new().get(format!("{}/api/me", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let me: Value = response.json().await.unwrap();
    Ok(me["role"].as_str().unwrap().to_owned())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const FILE: &str = r#"
# An Offstage server's settings.
[serve]
addr = "127.0.0.2:0"
db = "data/tasks.db"
tokens = ["read:file-read"]
token_files = ["tokens.txt"]
demo = true
keep = "30d,1000"

[serve.keep_types]
"demo.echo" = "12h"
"#;

/// Writes `FILE` and the token file it names into a new scratch directory, and the directory
/// its database goes in.
fn configured() -> PathBuf {
    let dir = scratch();
    std::fs::create_dir_all(dir.join("conf/data")).unwrap();
    std::fs::write(dir.join("conf/offstage.toml"), FILE).unwrap();
    std::fs::write(dir.join("conf/tokens.txt"), "control:file-control\n").unwrap();
    dir
}

#[tokio::test]
async fn the_file_sets_the_address_tokens_database_and_task_types() {
    let dir = configured();
    // Run from another directory: the file's relative paths are the file's directory's.
    let server = start(
        offstage(&dir, &["serve", "--config", "conf/offstage.toml"]),
        &dir,
    );
    assert!(
        server.url.starts_with("http://127.0.0.2:"),
        "listens on the file's address: {}",
        server.url
    );
    assert_eq!(
        role(&server, None).await,
        Err(401),
        "the file's tokens are required"
    );
    assert_eq!(
        role(&server, Some("file-read")).await.as_deref(),
        Ok("read")
    );
    assert_eq!(
        role(&server, Some("file-control")).await.as_deref(),
        Ok("control"),
        "the token file, relative to the config file"
    );
    assert!(
        dir.join("conf/data/tasks.db").exists(),
        "the database is beside the file, not in the working directory"
    );
    assert!(!dir.join("offstage.db").exists());
    let types: Value = reqwest::Client::new()
        .get(format!("{}/api/task-types", server.url))
        .bearer_auth("file-read")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        types.to_string().contains("demo.echo"),
        "demo = true registers the demo types: {types}"
    );
}

#[tokio::test]
async fn flags_and_the_environment_override_the_file() {
    let dir = configured();
    let mut command = offstage(
        &dir,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token-file",
            "flag-tokens.txt",
        ],
    );
    std::fs::write(dir.join("flag-tokens.txt"), "launch:flag-launch\n").unwrap();
    command
        .env("OFFSTAGE_CONFIG", "conf/offstage.toml")
        .env("OFFSTAGE_TOKENS", "worker:env-worker");
    let server = start(command, &dir);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "--addr over the file's addr: {}",
        server.url
    );
    assert_eq!(
        role(&server, Some("flag-launch")).await.as_deref(),
        Ok("launch")
    );
    assert_eq!(
        role(&server, Some("env-worker")).await.as_deref(),
        Ok("worker")
    );
    // The flag's token file and the variable's tokens replace the file's lists.
    assert_eq!(role(&server, Some("file-control")).await, Err(401));
    assert_eq!(role(&server, Some("file-read")).await, Err(401));
}

#[test]
fn every_bad_value_is_refused_with_the_file_line_and_key() {
    let dir = scratch();
    // (the file's [serve] lines, the key the message names, a word of its reason)
    let cases = [
        (
            "adress = \"127.0.0.1:7700\"",
            "serve.adress",
            "unknown key `adress`",
        ),
        ("addr = 7700", "serve.addr", "expected a string"),
        ("addr = \"localhost\"", "serve.addr", "is not an address"),
        (
            "tokens = [\"read:a\",\n  \"boss:b\"]",
            "serve.tokens",
            "is not a role",
        ),
        (
            "tokens = \"read:hunter2\"",
            "serve.tokens",
            "list of \"ROLE:SECRET\"",
        ),
        (
            "allowed_hosts = [\"a b\"]",
            "serve.allowed_hosts",
            "is not a host",
        ),
        (
            "allowed_origins = [\"example.com\"]",
            "serve.allowed_origins",
            "is not an origin",
        ),
        (
            "cors_origins = [\"ftp:/x\"]",
            "serve.cors_origins",
            "is not an origin",
        ),
        (
            "trace_url = \"jaeger\"",
            "serve.trace_url",
            "not an http:// or https:// URL",
        ),
        (
            "heartbeat_s = -1",
            "serve.heartbeat_s",
            "not a number of seconds",
        ),
        (
            "node_timeout_s = \"10\"",
            "serve.node_timeout_s",
            "expected f64",
        ),
        (
            "max_concurrency = -5",
            "serve.max_concurrency",
            "expected usize",
        ),
        ("keep = \"a week\"", "serve.keep", "retention `a week`"),
        (
            "[serve.keep_types]\n\"demo.echo\" = \"7 days\"",
            "serve.keep_types.\"demo.echo\"",
            "retention",
        ),
        ("demo = \"yes\"", "serve.demo", "expected a boolean"),
    ];
    for (number, (lines, key, reason)) in cases.iter().enumerate() {
        let name = format!("bad{number}.toml");
        let text = format!("# a comment\n[serve]\n{lines}\n");
        std::fs::write(dir.join(&name), &text).unwrap();
        let line = 3 + lines.lines().count() - 1;
        let expected = format!("{name}:{line}: {key}: ");
        for command in ["config check", "serve"] {
            let mut args: Vec<&str> = command.split(' ').collect();
            args.extend(["--config", &name]);
            let output = offstage(&dir, &args).output().unwrap();
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(1), "{command} {name}: {message}");
            assert!(
                message.starts_with(&format!("offstage: {expected}")) && message.contains(reason),
                "{command} with\n{text}\nsays: {message}\nnot: {expected}... {reason}"
            );
            assert!(
                !message.contains("hunter2"),
                "a secret is never repeated: {message}"
            );
        }
    }

    std::fs::write(dir.join("top.toml"), "addr = \"127.0.0.1:7700\"\n").unwrap();
    let output = offstage(&dir, &["config", "check", "--config", "top.toml"])
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains(
            "top.toml:1: addr: unknown key `addr`, every setting goes in the [serve] table"
        ),
        "{}",
        stderr(&output)
    );
    let output = offstage(&dir, &["config", "check", "--config", "missing.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read the config file missing.toml"),
        "{}",
        stderr(&output)
    );
    // A setting that only fails with the others: no tokens on a public address.
    std::fs::write(dir.join("open.toml"), "[serve]\naddr = \"0.0.0.0:7700\"\n").unwrap();
    let output = offstage(&dir, &["config", "check", "--config", "open.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("in open.toml: tokens or token_files, addr, or insecure = true"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_check_passes_a_good_file_and_print_masks_secrets() {
    let dir = configured();
    let check = offstage(&dir, &["config", "check", "--config", "conf/offstage.toml"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert_eq!(stdout(&check).trim(), "conf/offstage.toml: ok");

    let print = offstage(
        &dir,
        &[
            "config",
            "print",
            "--config",
            "conf/offstage.toml",
            "--heartbeat-s",
            "2.5",
            "--db",
            "postgres://offstage:pg-password@db.internal/tasks",
        ],
    )
    .env("OFFSTAGE_TOKENS", "launch:env-launch")
    .env(
        "OFFSTAGE_TOKEN_SECRET",
        "a-signing-secret-of-at-least-32-bytes",
    )
    .output()
    .unwrap();
    assert_eq!(print.status.code(), Some(0), "{}", stderr(&print));
    let text = stdout(&print);
    for secret in ["file-read", "env-launch", "pg-password", "a-signing-secret"] {
        assert!(!text.contains(secret), "{secret} is masked:\n{text}");
    }
    assert!(
        text.contains("from OFFSTAGE_TOKEN_SECRET (not shown)"),
        "{text}"
    );
    let printed: toml::Table = text.parse().unwrap();
    let serve = &printed["serve"];
    assert_eq!(serve["addr"].as_str(), Some("127.0.0.2:0"));
    assert_eq!(serve["heartbeat_s"].as_float(), Some(2.5), "the flag wins");
    assert_eq!(
        serve["node_timeout_s"].as_float(),
        Some(10.0),
        "the default"
    );
    assert_eq!(serve["keep"].as_str(), Some("30d,1000"));
    assert_eq!(serve["keep_types"]["demo.echo"].as_str(), Some("12h"));
    assert_eq!(
        serve["db"].as_str(),
        Some("postgres://offstage:***@db.internal/tasks")
    );
    assert_eq!(
        serve["tokens"].as_array().unwrap().len(),
        1,
        "the variable's token replaces the file's: {text}"
    );
    assert!(serve["token_files"].as_array().unwrap()[0]
        .as_str()
        .unwrap()
        .ends_with("conf/tokens.txt"));

    // What print wrote reads back as a config file that check accepts.
    std::fs::write(dir.join("printed.toml"), &text).unwrap();
    let again = offstage(&dir, &["config", "check", "--config", "printed.toml"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}

#[tokio::test]
async fn serve_with_no_arguments_keeps_offstage_db_in_the_working_directory() {
    let dir = scratch();
    // Only the address comes from the environment, so that the test needs no fixed port.
    let mut command = offstage(&dir, &["serve"]);
    command.env("OFFSTAGE_ADDR", "127.0.0.1:0");
    let server = start(command, &dir);
    assert_eq!(role(&server, None).await.as_deref(), Ok("control"));
    assert!(dir.join("offstage.db").exists());
}
