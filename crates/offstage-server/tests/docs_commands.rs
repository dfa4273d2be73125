//! The book's commands run, so the docs cannot drift from the binary.
//!
//! Every page `docs/SUMMARY.md` lists is read as mdBook reads it. Each ```` ```console ````
//! block holds commands a reader types, each after a `$ ` prompt (a line ending in `\` goes on
//! to the next), and the lines after a command are its output as the page shows it. A page's
//! commands run in order in one `bash`, in a fresh temporary directory, with the `offstage`
//! that cargo built first on `PATH` and an `offstage serve --demo` already listening: the
//! reader's second terminal. A command `offstage serve ...` on the page replaces that server
//! (the same port, the page's own flags), and `localhost:7700`, `127.0.0.1:7700` and
//! `0.0.0.0:7700` in a command or its output mean the test's port. Each command must exit 0,
//! and the output the page shows must appear in what it printed, in order, line by line, with
//! ids, times and runs of spaces aside; `...` in a shown line stands for any text.
//!
//! A block that cannot run here (it installs software, needs PostgreSQL or runs `cargo`
//! itself) follows a comment that says why, `<!-- docs-test skip: the reason -->`; the test
//! lists every skipped block with its reason. A shell block in another language (`sh`,
//! `bash`, `shell`) is refused: a command in the book is run or says why not.
//!
//! The second test checks the book's links: every relative link or image points at a file
//! inside `docs/` (the site holds nothing else), and every `#anchor` at a heading there.

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use regex::Regex;

/// The book's source: `docs/`, with `book.toml` and `SUMMARY.md`.
fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// The comment that marks a block the test does not run, before its reason.
const SKIP: &str = "<!-- docs-test skip:";

/// How long one page's commands may take together.
const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

/// The pages `SUMMARY.md` links to, in its order, relative to `docs/`.
fn pages() -> Vec<String> {
    let summary = std::fs::read_to_string(docs().join("SUMMARY.md")).unwrap();
    let mut pages = Vec::new();
    for event in Parser::new(&summary) {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            if !dest_url.is_empty() && !pages.contains(&dest_url.to_string()) {
                pages.push(dest_url.to_string());
            }
        }
    }
    assert!(
        pages.len() > 10,
        "docs/SUMMARY.md lists {} pages: is it the book's summary?",
        pages.len()
    );
    pages
}

/// A command on a page, and the output the page shows for it.
#[derive(Debug)]
struct Command {
    /// `page:line`, for messages.
    at: String,
    text: String,
    shown: Vec<String>,
}

/// A page's commands, and the blocks it marks as not run (where, and why).
#[derive(Debug, Default)]
struct PageCommands {
    commands: Vec<Command>,
    skipped: Vec<(String, String)>,
}

/// The line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The commands of page `page` (relative to `docs/`); a shell block that is not `console`, or
/// a `console` block without a `$ ` prompt, is an error that says how to write it.
fn commands(page: &str) -> PageCommands {
    let text = std::fs::read_to_string(docs().join(page))
        .unwrap_or_else(|e| panic!("docs/SUMMARY.md lists {page}, which cannot be read: {e}"));
    let mut found = PageCommands::default();
    let mut block: Option<(String, usize, String)> = None;
    for (event, range) in Parser::new(&text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let lang = info.split([',', ' ']).next().unwrap_or("").to_owned();
                block = Some((lang, range.start, String::new()));
            }
            Event::Text(code) => {
                if let Some((_, _, body)) = &mut block {
                    body.push_str(&code);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                let Some((lang, start, body)) = block.take() else {
                    continue;
                };
                let line = line_of(&text, start);
                let at = format!("docs/{page}:{line}");
                if ["sh", "bash", "shell", "zsh"].contains(&lang.as_str()) {
                    panic!(
                        "{at}: a ```{lang} block. Write commands a reader runs as ```console, \
                         each after `$ `, so this test runs them; mark a block that cannot run \
                         here with `{SKIP} why -->` on the line before it; use ```text for \
                         anything that is not a command"
                    );
                }
                if lang != "console" {
                    continue;
                }
                let before = text[..start].trim_end();
                if before.ends_with("-->") {
                    if let Some(open) = before.rfind(SKIP) {
                        let reason = before[open + SKIP.len()..before.len() - 3].trim();
                        assert!(
                            !reason.is_empty(),
                            "{at}: say why the block is not run: `{SKIP} the reason -->`"
                        );
                        found.skipped.push((at, reason.to_owned()));
                        continue;
                    }
                }
                let before_count = found.commands.len();
                parse_console(&body, page, line, &mut found.commands);
                assert!(
                    found.commands.len() > before_count,
                    "{at}: a ```console block with no command: put `$ ` before each command"
                );
            }
            _ => {}
        }
    }
    found
}

/// Adds the commands of one ```console block (its first line is line `line + 1` of `page`).
fn parse_console(body: &str, page: &str, line: usize, commands: &mut Vec<Command>) {
    let mut lines = body.lines().enumerate();
    let mut current: Option<Command> = None;
    while let Some((i, text)) = lines.next() {
        if let Some(command) = text.strip_prefix("$ ") {
            commands.extend(current.take());
            let mut command = command.to_owned();
            while command.ends_with('\\') {
                let Some((_, next)) = lines.next() else { break };
                command.push('\n');
                command.push_str(next);
            }
            current = Some(Command {
                at: format!("docs/{page}:{}", line + 1 + i),
                text: command,
                shown: Vec::new(),
            });
        } else if let Some(command) = &mut current {
            command.shown.push(text.to_owned());
        } else if !text.trim().is_empty() {
            panic!(
                "docs/{page}:{}: output before any command in a ```console block: put `$ ` \
                 before the command",
                line + 1 + i
            );
        }
    }
    commands.extend(current);
}

/// Replaces the address the docs use, `...:7700`, with the test's.
fn at_port(text: &str, port: u16) -> String {
    let ours = format!("127.0.0.1:{port}");
    text.replace("localhost:7700", &ours)
        .replace("127.0.0.1:7700", &ours)
        .replace("0.0.0.0:7700", &ours)
}

/// What every page's script starts with: its server, and `offstage serve` as a function that
/// replaces it. The server's stdout stays open on descriptor 3 (it writes its address there).
const PRELUDE: &str = r#"set -o pipefail
__docs_server=""
__docs_stop() {
    if [ -n "$__docs_server" ]; then
        kill "$__docs_server" 2>/dev/null
        wait "$__docs_server" 2>/dev/null
        __docs_server=""
    fi
}
trap __docs_stop EXIT
offstage() {
    if [ "${1-}" != serve ]; then command offstage "$@"; return; fi
    shift
    local args=() skip=0 line
    for a in "$@"; do
        if [ "$skip" = 1 ]; then skip=0; continue; fi
        case "$a" in
            --addr) skip=1; continue ;;
            --addr=*) continue ;;
        esac
        args+=("$a")
    done
    __docs_stop
    exec 3< <(exec offstage serve "${args[@]}" --addr "127.0.0.1:$__docs_port" 2>>"$__docs/serve.log")
    __docs_server=$!
    if ! IFS= read -r line <&3; then
        echo "offstage serve stopped; its log:" >&2
        cat "$__docs/serve.log" >&2
        return 1
    fi
    echo "$line"
}
offstage serve --demo >/dev/null || exit 1
"#;

/// Runs one page's commands; each one's output is `dir/out.N`. `Err` names the command that
/// failed and shows what it printed.
fn run_page(page: &str, commands: &[Command], dir: &Path) -> Result<(), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut script = format!("__docs_port={port}\n__docs={}\n", dir.display());
    script.push_str(PRELUDE);
    for (n, command) in commands.iter().enumerate() {
        let text = at_port(&command.text, port);
        writeln!(
            script,
            "# {at}\n{{ {text}\n}} >\"$__docs/out.{n}\" 2>&1 </dev/null\n__docs_rc=$?\n\
             if [ $__docs_rc -ne 0 ]; then echo \"{n} $__docs_rc\" >\"$__docs/failed\"; exit 1; fi",
            at = command.at
        )
        .unwrap();
    }
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(dir.join("page.sh"), &script).unwrap();
    let bin = Path::new(common::BIN).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut child = std::process::Command::new("bash")
        .arg(dir.join("page.sh"))
        .current_dir(&work)
        .env("PATH", path)
        .env("OFFSTAGE_SERVER", format!("http://127.0.0.1:{port}"))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("OFFSTAGE_TOKEN")
        .env_remove("OFFSTAGE_TOKENS")
        .env_remove("OFFSTAGE_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait().unwrap()));
    let status = match ended.recv_timeout(PAGE_TIMEOUT) {
        Ok(status) => status,
        Err(_) => {
            // The whole group: bash, its server and whatever command hung.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let last = (0..commands.len())
                .rev()
                .find(|n| dir.join(format!("out.{n}")).exists())
                .unwrap_or(0);
            return Err(format!(
                "docs/{page}: still running after {PAGE_TIMEOUT:?}, at {}: `{}`",
                commands[last].at, commands[last].text
            ));
        }
    };
    let output =
        |n: usize| std::fs::read_to_string(dir.join(format!("out.{n}"))).unwrap_or_default();
    if let Ok(failed) = std::fs::read_to_string(dir.join("failed")) {
        let (n, rc) = failed.trim().split_once(' ').unwrap();
        let n: usize = n.parse().unwrap();
        return Err(format!(
            "{}: `{}` exited {rc}; it printed:\n{}",
            commands[n].at,
            commands[n].text,
            output(n)
        ));
    }
    if !status.success() {
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        return Err(format!(
            "docs/{page}: the page's script failed ({status}):\n{stderr}"
        ));
    }
    for (n, command) in commands.iter().enumerate() {
        let shown: Vec<String> = command.shown.iter().map(|l| at_port(l, port)).collect();
        if let Err(missing) = shows(&shown, &output(n)) {
            return Err(format!(
                "{}: `{}` did not print the line the page shows\n  {missing}\nin order; it \
                 printed:\n{}",
                command.at,
                command.text,
                output(n)
            ));
        }
    }
    Ok(())
}

/// A line with ids, times and runs of spaces made alike.
fn normalize(line: &str) -> String {
    static PATTERNS: std::sync::OnceLock<[(Regex, &str); 3]> = std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            (
                Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
                    .unwrap(),
                "<id>",
            ),
            (
                Regex::new(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
                    .unwrap(),
                "<time>",
            ),
            (Regex::new(r"\s+").unwrap(), " "),
        ]
    });
    let mut line = line.trim().to_owned();
    for (pattern, with) in patterns {
        line = pattern.replace_all(&line, *with).into_owned();
    }
    line
}

/// `Ok` if every non-empty line of `shown` matches a line of `printed`, in order; `...` in a
/// shown line matches any text. `Err` is the first shown line not found.
fn shows(shown: &[String], printed: &str) -> Result<(), String> {
    let mut printed = printed.lines().map(normalize);
    for line in shown.iter().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<String> = normalize(line).split("...").map(regex::escape).collect();
        let pattern = Regex::new(&format!("^{}$", parts.join(".*"))).unwrap();
        if !printed.any(|p| pattern.is_match(&p)) {
            return Err(line.clone());
        }
    }
    Ok(())
}

#[test]
fn every_command_in_the_book_runs() {
    let root = std::env::temp_dir().join(format!("offstage-docs-{}", uuid::Uuid::now_v7()));
    let mut ran = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for page in pages() {
        let found = commands(&page);
        skipped.extend(found.skipped);
        if found.commands.is_empty() {
            continue;
        }
        let dir = root.join(page.replace('/', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        match run_page(&page, &found.commands, &dir) {
            Ok(()) => ran += found.commands.len(),
            Err(failure) => failures.push(failure),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "{ran} commands of the book ran; {} blocks not run:",
        skipped.len()
    );
    for (at, reason) in &skipped {
        println!("  {at}: {reason}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        ran > 20,
        "only {ran} commands ran: does the book still have its console blocks?"
    );
}

/// mdBook's id for a heading: lower case, letters, digits, `-` and `_` kept, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The ids of `page`'s headings, as mdBook makes them (a repeated one gets `-1`, `-2`, ...).
fn anchors(page: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut ids = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(&text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = &mut heading {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let id = slug(&heading.take().unwrap());
                let mut unique = id.clone();
                let mut n = 1;
                while !ids.insert(unique.clone()) {
                    unique = format!("{id}-{n}");
                    n += 1;
                }
            }
            _ => {}
        }
    }
    ids
}

#[test]
fn the_books_links_point_at_pages_and_headings_that_exist() {
    let docs = docs().canonicalize().unwrap();
    let mut broken = Vec::new();
    for page in std::iter::once("SUMMARY.md".to_owned()).chain(pages()) {
        let path = docs.join(&page);
        let text = std::fs::read_to_string(&path).unwrap();
        for (event, range) in Parser::new(&text).into_offset_iter() {
            let dest = match event {
                Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => dest_url,
                _ => continue,
            };
            if dest.contains("://") || dest.starts_with("mailto:") || dest.is_empty() {
                continue;
            }
            let at = format!("docs/{page}:{}", line_of(&text, range.start));
            let (file, anchor) = match dest.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (&*dest, None),
            };
            let target = if file.is_empty() {
                path.clone()
            } else {
                match path.parent().unwrap().join(file).canonicalize() {
                    Ok(target) => target,
                    Err(_) => {
                        broken.push(format!("{at}: {dest}: no such file"));
                        continue;
                    }
                }
            };
            if !target.starts_with(&docs) {
                broken.push(format!(
                    "{at}: {dest} is outside docs/, which is all the site holds: name the \
                     file in backticks instead"
                ));
                continue;
            }
            if let Some(anchor) = anchor {
                if target.extension().is_some_and(|e| e == "md")
                    && !anchors(&target).contains(anchor)
                {
                    broken.push(format!("{at}: {dest}: no heading has the id `{anchor}`"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in the book:\n{}",
        broken.join("\n")
    );
}

#[test]
fn output_is_compared_loosely_but_not_blindly() {
    let printed = "id 0194b0e1-7c3a-7d5e-9f00-0123456789ab\nstatus    completed\nended 2026-12-01T10:00:00.123Z\n";
    let lines = |s: &[&str]| s.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        shows(
            &lines(&[
                "id 01936a4e-0000-7000-8000-000000000000",
                "status completed"
            ]),
            printed
        ),
        Ok(())
    );
    assert_eq!(shows(&lines(&["ended ...", ""]), printed), Ok(()));
    assert!(shows(&lines(&["status failed"]), printed).is_err());
    assert!(
        shows(&lines(&["status completed", "id ..."]), printed).is_err(),
        "out of order"
    );
}
