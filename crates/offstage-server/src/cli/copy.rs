//! `offstage migrate --from SRC --to DST`: copies one Offstage database into another with the
//! library's `store::copy`, showing a bar per table (plain lines when stdout is not a
//! terminal), then the count check as a small table. A mismatch exits 1 with the numbers.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use offstage::store::copy::{CopyProgress, DatabaseCopy};

use super::{Failure, Out};

/// The flags of a copy beside its two databases.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) into_non_empty: bool,
    pub(crate) force: bool,
    pub(crate) batch: usize,
}

/// How often a plain progress line is printed for a table still being copied.
const LINE_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    from: &str,
    to: &str,
    options: Options,
    out: &mut Out,
) -> Result<ExitCode, Failure> {
    if options.batch == 0 {
        return Err(
            "--batch 0 copies nothing: give a number of rows, such as 5000"
                .to_owned()
                .into(),
        );
    }
    let copy = DatabaseCopy::open(from, to)
        .await
        .map_err(|e| e.to_string())?
        .into_non_empty(options.into_non_empty)
        .force(options.force)
        .batch(options.batch);
    let plan = copy.plan().await.map_err(|e| e.to_string())?;
    out.line(format_args!(
        "copying {} into {}",
        copy.source(),
        copy.target()
    ))?;
    if plan.resuming {
        let (copied, total) = plan
            .tables
            .iter()
            .fold((0, 0), |(c, t), (_, total, copied)| (c + copied, t + total));
        out.line(format_args!(
            "resuming the unfinished copy: {copied} of {total} rows were copied"
        ))?;
    }
    let mut shown = Shown::new(std::io::stdout().is_terminal());
    let mut failed = None;
    let report = copy
        .run(&plan, |progress| {
            if let Err(e) = shown.update(progress, out) {
                failed.get_or_insert(e);
            }
        })
        .await;
    shown.finish();
    if let Some(failure) = failed {
        return Err(failure);
    }
    let report = report.map_err(|e| e.to_string())?;
    out.line(format_args!(
        "{:<10} {:>12} {:>12}",
        "TABLE", "SOURCE", "COPIED"
    ))?;
    for table in &report.tables {
        let mark = if table.source == table.copied {
            ""
        } else {
            "  MISMATCH"
        };
        out.line(format_args!(
            "{:<10} {:>12} {:>12}{mark}",
            table.table, table.source, table.copied
        ))?;
    }
    if report.matches() {
        out.line(format_args!(
            "done: every count matches. Start the nodes with --db {}",
            copy.target()
                .strip_prefix("sqlite:")
                .unwrap_or(copy.target())
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut problems: Vec<String> = report
        .tables
        .iter()
        .filter(|t| t.source != t.copied)
        .map(|t| {
            format!(
                "{}: {} in the source, {} copied",
                t.table, t.source, t.copied
            )
        })
        .collect();
    problems.extend(
        report
            .count_errors
            .iter()
            .map(|e| format!("task counts of {e}")),
    );
    Err(format!(
        "the copy does not match the source ({}). Was a node writing to the source? Stop them \
         all and run the same command again (the target keeps the copy's progress)",
        problems.join("; ")
    )
    .into())
}

/// The progress as the reader sees it: a bar per table on a terminal, else a line a second.
struct Shown {
    terminal: bool,
    bar: Option<ProgressBar>,
    table: &'static str,
    /// When the last plain line was printed.
    printed: Option<Instant>,
}

impl Shown {
    fn new(terminal: bool) -> Shown {
        Shown {
            terminal,
            bar: None,
            table: "",
            printed: None,
        }
    }

    fn update(&mut self, progress: &CopyProgress, out: &mut Out) -> Result<(), Failure> {
        let new_table = progress.table != self.table;
        if new_table {
            self.finish();
            self.table = progress.table;
        }
        if self.terminal {
            let bar = self.bar.get_or_insert_with(|| bar(progress));
            bar.set_position(progress.copied);
            return Ok(());
        }
        let done = progress.copied >= progress.total;
        let due = self.printed.is_none_or(|at| at.elapsed() >= LINE_EVERY);
        if new_table || done || due {
            out.line(format_args!(
                "{}: {}/{} copied",
                progress.table, progress.copied, progress.total
            ))?;
            self.printed = Some(Instant::now());
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        self.printed = None;
    }
}

fn bar(progress: &CopyProgress) -> ProgressBar {
    let bar = ProgressBar::new(progress.total);
    let style = ProgressStyle::with_template(
        "{prefix:<10} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(progress.table);
    bar.reset_eta();
    bar
}
