//! The **config file** of `offstage serve`: a TOML file, `offstage.toml` by custom, whose
//! `[serve]` table holds any of `serve`'s settings, each key named as its flag with `_` for
//! `-` (lists in the plural), and `offstage config check` and `offstage config print`.
//!
//! ```toml
//! [serve]
//! addr = "0.0.0.0:7700"
//! db = "/var/lib/offstage/offstage.db"
//! token_files = ["/etc/offstage/tokens"]
//! keep = "30d"
//!
//! [serve.keep_types]
//! "reports.build" = "1000"
//! ```
//!
//! `serve` reads it when `--config PATH` or `OFFSTAGE_CONFIG` names it; there is no search for
//! one. Each setting comes from its flag, else its environment variable, else the file, else
//! its default: the file fills only what the command line and the environment left out, and a
//! list from a flag replaces the file's list rather than adding to it. Relative paths in the
//! file (`db`, `token_files`, `token_secret_file`) are relative to the file's directory, so the
//! file means the same from any working directory.
//!
//! Every bad value is refused before anything starts, with the file, the line and the key:
//! `offstage.toml:3: serve.addr: ...`, then why and how to fix it. An unknown key is refused
//! the same way, so a misspelt setting never goes unnoticed. The values go through the same
//! parsers as the flags (`Tokens::parse_one`, `Sites::parse_host`, `Retention`'s `FromStr`),
//! so the file accepts exactly what the command line does.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use offstage_server::{Role, Sites, Tokens};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::serve::{parse_keep_type, shown, Serve, SECRET_ENV, TOKENS_ENV};
use super::{Failure, Out};

/// `offstage config`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Checks the config file (`--config` or OFFSTAGE_CONFIG) and every setting as `serve`
    /// would, without opening the database or listening: exit 0 when all are good, else 1 with
    /// the file, line and key of the first bad one. Takes `serve`'s flags too.
    Check(Serve),
    /// Prints the settings `serve` would run with (its flags, the environment, the config file
    /// and the defaults together) as a config file, with token secrets masked. Takes `serve`'s
    /// flags too.
    Print(Serve),
}

impl ConfigCommand {
    /// The settings this command reads, for `cli::run` to record which were given.
    pub(super) fn serve_mut(&mut self) -> &mut Serve {
        match self {
            ConfigCommand::Check(serve) | ConfigCommand::Print(serve) => serve,
        }
    }

    pub(crate) async fn run(self, out: &mut Out) -> Result<ExitCode, Failure> {
        match self {
            ConfigCommand::Check(serve) => {
                let serve = serve.with_config_file()?;
                serve.settle()?;
                match &serve.config {
                    Some(path) => out.line(format_args!("{}: ok", path.display()))?,
                    None => out.line(
                        "no config file given (--config PATH or OFFSTAGE_CONFIG); the flags, \
                         environment and defaults are ok",
                    )?,
                }
            }
            ConfigCommand::Print(serve) => {
                let serve = serve.with_config_file()?;
                serve.settle()?;
                out.text(&printed(&serve)?)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Serve {
    /// These settings with the config file's values filled in where neither a flag nor an
    /// environment variable gave one. Without a config file, the settings as they are.
    pub(super) fn with_config_file(mut self) -> Result<Serve, Failure> {
        if let Some(path) = self.config.clone() {
            ConfigFile::read(&path)?.fill(&mut self)?;
        }
        Ok(self)
    }

    /// True when the flag or environment variable of argument `id` gave a value.
    fn gave(&self, id: &str) -> bool {
        self.given.contains(id)
    }
}

/// The file's document: a `[serve]` table and nothing else.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    serve: Keys,
}

/// The keys of `[serve]`, each as written, with where it was written (for errors).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Keys {
    db: Option<Spanned<String>>,
    addr: Option<Spanned<String>>,
    tokens: Option<Vec<Spanned<String>>>,
    token_files: Option<Vec<Spanned<String>>>,
    token_secret_file: Option<Spanned<String>>,
    allowed_hosts: Option<Vec<Spanned<String>>>,
    allowed_origins: Option<Vec<Spanned<String>>>,
    cors_origins: Option<Vec<Spanned<String>>>,
    trace_url: Option<Spanned<String>>,
    demo: Option<bool>,
    remote_types: Option<Vec<String>>,
    insecure: Option<bool>,
    drain_s: Option<Spanned<f64>>,
    kill_grace_s: Option<Spanned<f64>>,
    heartbeat_s: Option<Spanned<f64>>,
    node_timeout_s: Option<Spanned<f64>>,
    max_concurrency: Option<usize>,
    log_max_lines: Option<u64>,
    log_max_bytes: Option<u64>,
    warm_processes: Option<usize>,
    keep: Option<Spanned<String>>,
    keep_types: Option<BTreeMap<String, Spanned<String>>>,
}

/// A config file, read and parsed (not yet checked value by value).
struct ConfigFile {
    path: PathBuf,
    text: String,
    keys: Keys,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<ConfigFile, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the config file {} (from --config or OFFSTAGE_CONFIG): {e}",
                path.display()
            )
        })?;
        let document: Document = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        Ok(ConfigFile {
            path: path.to_owned(),
            text,
            keys: document.serve,
        })
    }

    /// Sets each of `serve`'s settings that the file has and the flags and environment left
    /// out, after checking it as its flag would be.
    fn fill(self, serve: &mut Serve) -> Result<(), Failure> {
        let keys = &self.keys;
        if let Some(db) = keys.db.as_ref().filter(|_| !serve.gave("db")) {
            serve.db = if db.get_ref().contains("://") {
                db.get_ref().clone()
            } else {
                self.relative(db.get_ref()).display().to_string()
            };
        }
        if let Some(addr) = keys.addr.as_ref().filter(|_| !serve.gave("addr")) {
            serve.addr = self.check(addr, "addr", |text| {
                text.trim().parse().map_err(|_| {
                    format!(
                        "`{text}` is not an address: write IP:PORT, such as 127.0.0.1:7700, or \
                         0.0.0.0:7700 for every interface"
                    )
                })
            })?;
        }
        let env_tokens = std::env::var(TOKENS_ENV).is_ok_and(|text| !text.trim().is_empty());
        if let Some(tokens) = keys
            .tokens
            .as_ref()
            .filter(|_| !serve.gave("tokens") && !env_tokens)
        {
            serve.tokens =
                self.check_all(tokens, "tokens", |text: &String| Tokens::parse_one(text))?;
        }
        if let Some(files) = keys
            .token_files
            .as_ref()
            .filter(|_| !serve.gave("token_files"))
        {
            serve.token_files = self.check_all(files, "token_files", |path| {
                Ok::<_, String>(self.relative(path))
            })?;
        }
        let env_secret = std::env::var(SECRET_ENV).is_ok_and(|text| !text.trim().is_empty());
        if let Some(file) = keys
            .token_secret_file
            .as_ref()
            .filter(|_| !serve.gave("token_secret_file") && !env_secret)
        {
            serve.token_secret_file = Some(self.relative(file.get_ref()));
        }
        if let Some(hosts) = keys
            .allowed_hosts
            .as_ref()
            .filter(|_| !serve.gave("allowed_hosts"))
        {
            serve.allowed_hosts = self.check_all(hosts, "allowed_hosts", |text: &String| {
                Sites::parse_host(text)
            })?;
        }
        if let Some(origins) = keys
            .allowed_origins
            .as_ref()
            .filter(|_| !serve.gave("allowed_origins"))
        {
            serve.allowed_origins =
                self.check_all(origins, "allowed_origins", |text: &String| {
                    Sites::parse_origin(text)
                })?;
        }
        if let Some(origins) = keys
            .cors_origins
            .as_ref()
            .filter(|_| !serve.gave("cors_origins"))
        {
            serve.cors_origins = self.check_all(origins, "cors_origins", |text: &String| {
                Sites::parse_origin(text)
            })?;
        }
        if let Some(url) = keys.trace_url.as_ref().filter(|_| !serve.gave("trace_url")) {
            serve.trace_url = Some(self.check(url, "trace_url", |text| {
                offstage_server::parse_trace_url(text)
            })?);
        }
        if let Some(demo) = keys.demo.filter(|_| !serve.gave("demo")) {
            serve.demo = demo;
        }
        if let Some(types) = keys
            .remote_types
            .as_ref()
            .filter(|_| !serve.gave("remote_types"))
        {
            serve.remote_types = types.clone();
        }
        if let Some(insecure) = keys.insecure.filter(|_| !serve.gave("insecure")) {
            serve.insecure = insecure;
        }
        for (id, key, field) in [
            ("drain_s", &keys.drain_s, &mut serve.drain_s),
            ("kill_grace_s", &keys.kill_grace_s, &mut serve.kill_grace_s),
            ("heartbeat_s", &keys.heartbeat_s, &mut serve.heartbeat_s),
            (
                "node_timeout_s",
                &keys.node_timeout_s,
                &mut serve.node_timeout_s,
            ),
        ] {
            if let Some(value) = key.as_ref().filter(|_| !serve.given.contains(id)) {
                *field = self.check(value, id, |seconds| {
                    match Duration::try_from_secs_f64(*seconds) {
                        Ok(_) => Ok(*seconds),
                        Err(_) => Err(format!(
                        "{seconds} is not a number of seconds: give 0 or more, such as 10 or 0.5"
                    )),
                    }
                })?;
            }
        }
        if let Some(max) = keys
            .max_concurrency
            .filter(|_| !serve.gave("max_concurrency"))
        {
            serve.max_concurrency = max;
        }
        if let Some(lines) = keys.log_max_lines.filter(|_| !serve.gave("log_max_lines")) {
            serve.log_max_lines = lines;
        }
        if let Some(bytes) = keys.log_max_bytes.filter(|_| !serve.gave("log_max_bytes")) {
            serve.log_max_bytes = bytes;
        }
        if let Some(warm) = keys
            .warm_processes
            .filter(|_| !serve.gave("warm_processes"))
        {
            serve.warm_processes = warm;
        }
        if let Some(keep) = keys.keep.as_ref().filter(|_| !serve.gave("keep")) {
            serve.keep = self.check(keep, "keep", |text| {
                text.parse().map_err(|e: offstage::Error| e.to_string())
            })?;
        }
        if let Some(rules) = keys
            .keep_types
            .as_ref()
            .filter(|_| !serve.gave("keep_types"))
        {
            serve.keep_types = rules
                .iter()
                .map(|(name, rule)| {
                    let key = format!("keep_types.\"{name}\"");
                    self.check(rule, &key, |rule| {
                        parse_keep_type(&format!("{name}={rule}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// `value` through `parse`, or an error that names this file, the value's line and `key`.
    fn check<T, U, E: Display>(
        &self,
        value: &Spanned<T>,
        key: &str,
        parse: impl FnOnce(&T) -> Result<U, E>,
    ) -> Result<U, Failure> {
        parse(value.get_ref()).map_err(|e| self.error(value.span(), key, e))
    }

    /// Each of a list's values through `parse`; the first that fails is the error.
    fn check_all<T, U, E: Display>(
        &self,
        values: &[Spanned<T>],
        key: &str,
        parse: impl Fn(&T) -> Result<U, E>,
    ) -> Result<Vec<U>, Failure> {
        values
            .iter()
            .map(|value| self.check(value, key, &parse))
            .collect()
    }

    fn error(&self, span: Range<usize>, key: &str, message: impl Display) -> Failure {
        let line = line_of(&self.text, span.start);
        Failure::Message(format!(
            "{}:{line}: serve.{key}: {message}",
            self.path.display()
        ))
    }

    /// A path written in the file: relative ones are relative to the file's directory.
    fn relative(&self, path: &str) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(path),
            None => PathBuf::from(path),
        }
    }
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// A TOML error (bad syntax, a value of the wrong type, an unknown key) as one line: the file,
/// the line, the key written there and what is wrong.
fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> Failure {
    let message = error
        .message()
        .trim()
        .lines()
        .collect::<Vec<_>>()
        .join("; ")
        .replace("unknown field", "unknown key")
        .replace(
            "expected `serve`",
            "every setting goes in the [serve] table",
        );
    let Some(span) = error.span() else {
        return Failure::Message(format!("{}: {message}", path.display()));
    };
    let line = line_of(text, span.start);
    let key = key_at(text, line);
    // A token's secret is never repeated, not even inside a message about its type.
    let message = if key.as_deref() == Some("serve.tokens") {
        "not read (the value is not shown, as it may hold a secret): write tokens as a list of \
         \"ROLE:SECRET\" strings, such as tokens = [\"control:s3cret\"]"
            .to_owned()
    } else {
        message
    };
    let key = key.map(|key| format!("{key}: ")).unwrap_or_default();
    Failure::Message(format!(
        "{}:{line}: {key}{message} (see docs/configuration.md for every key)",
        path.display()
    ))
}

/// The dotted key written on `line` (1-based) or, for a value spread over lines, on the
/// nearest line above it that starts one: `serve.addr`.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let (index, key) = lines.iter().enumerate().rev().find_map(|(i, l)| {
        let (key, _) = l.split_once('=')?;
        let key = key.trim();
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c));
        plain.then(|| (i, key.to_owned()))
    })?;
    let table = lines[..index]
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'));
    Some(match table {
        Some(table) => format!("{}.{key}", table.trim()),
        None => key,
    })
}

/// `config print`'s document: every setting, as a config file would give it.
#[derive(Serialize)]
struct Printed {
    serve: PrintedKeys,
}

#[derive(Serialize)]
struct PrintedKeys {
    db: String,
    addr: String,
    tokens: Vec<String>,
    token_files: Vec<PathBuf>,
    token_secret_file: Option<PathBuf>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    cors_origins: Vec<String>,
    trace_url: Option<String>,
    demo: bool,
    remote_types: Vec<String>,
    insecure: bool,
    drain_s: f64,
    kill_grace_s: f64,
    heartbeat_s: f64,
    node_timeout_s: f64,
    max_concurrency: usize,
    log_max_lines: u64,
    log_max_bytes: u64,
    warm_processes: usize,
    keep: String,
    keep_types: BTreeMap<String, String>,
}

/// The effective settings as TOML, secrets masked: each token as `ROLE:***`, the database
/// URL's password as `***`; the scoped tokens' secret, when it comes from the environment, is
/// only mentioned.
fn printed(serve: &Serve) -> Result<String, Failure> {
    let mut tokens: Vec<(Role, String)> = serve.tokens.clone();
    if let Ok(text) = std::env::var(TOKENS_ENV) {
        if !text.trim().is_empty() {
            tokens.extend(Tokens::parse_env(&text, TOKENS_ENV)?);
        }
    }
    let document = Printed {
        serve: PrintedKeys {
            db: shown(&serve.db),
            addr: serve.addr.to_string(),
            tokens: tokens
                .iter()
                .map(|(role, _)| format!("{role}:***"))
                .collect(),
            token_files: serve.token_files.clone(),
            token_secret_file: serve.token_secret_file.clone(),
            allowed_hosts: serve.allowed_hosts.clone(),
            allowed_origins: serve.allowed_origins.clone(),
            cors_origins: serve.cors_origins.clone(),
            trace_url: serve.trace_url.clone(),
            demo: serve.demo,
            remote_types: serve.remote_types.clone(),
            insecure: serve.insecure,
            drain_s: serve.drain_s,
            kill_grace_s: serve.kill_grace_s,
            heartbeat_s: serve.heartbeat_s,
            node_timeout_s: serve.node_timeout_s,
            max_concurrency: serve.max_concurrency,
            log_max_lines: serve.log_max_lines,
            log_max_bytes: serve.log_max_bytes,
            warm_processes: serve.warm_processes,
            keep: rule_text(serve.keep),
            keep_types: serve
                .keep_types
                .iter()
                .map(|(name, rule)| (name.clone(), rule_text(*rule)))
                .collect(),
        },
    };
    let body = toml::to_string(&document).map_err(|e| e.to_string())?;
    let mut head = String::from("# The settings `offstage serve` would run with: ");
    match &serve.config {
        Some(path) => head.push_str(&format!(
            "flags, environment, {} and defaults.\n",
            path.display()
        )),
        None => head.push_str("flags, environment and defaults (no config file).\n"),
    }
    head.push_str(
        "# Token secrets are masked as ***: put real ones back before using this as a file.\n",
    );
    if serve.token_secret_file.is_none()
        && std::env::var(SECRET_ENV).is_ok_and(|text| !text.trim().is_empty())
    {
        head.push_str(&format!(
            "# The scoped tokens' secret comes from {SECRET_ENV} (not shown).\n"
        ));
    }
    Ok(format!("{head}{body}"))
}

/// A retention rule as `--keep` takes it: `forever`, `7d`, `1000`, `30d,1000`.
fn rule_text(rule: offstage::Retention) -> String {
    let age = rule.max_age.map(|age| {
        let seconds = age.as_secs();
        if age.subsec_nanos() != 0 {
            format!("{}s", age.as_secs_f64())
        } else if seconds % 86_400 == 0 {
            format!("{}d", seconds / 86_400)
        } else if seconds % 3_600 == 0 {
            format!("{}h", seconds / 3_600)
        } else if seconds % 60 == 0 {
            format!("{}m", seconds / 60)
        } else {
            format!("{seconds}s")
        }
    });
    let count = rule.max_count.map(|count| count.to_string());
    match (age, count) {
        (None, None) => "forever".to_owned(),
        (Some(age), None) => age,
        (None, Some(count)) => count,
        (Some(age), Some(count)) => format!("{age},{count}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_prints_as_the_flag_takes_it() {
        for text in ["forever", "7d", "12h", "30m", "90s", "1000", "30d,100000"] {
            let rule: offstage::Retention = text.parse().unwrap();
            assert_eq!(rule_text(rule), text);
        }
    }

    #[test]
    fn the_key_of_a_line_is_found_under_its_table() {
        let text = "[serve]\naddr = 5\ntokens = [\n  \"read:x\",\n  7,\n]\n";
        assert_eq!(key_at(text, 2).as_deref(), Some("serve.addr"));
        assert_eq!(key_at(text, 5).as_deref(), Some("serve.tokens"));
        assert_eq!(key_at(text, 1), None);
    }
}
