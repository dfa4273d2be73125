//! **Out**: where a command's output goes, normally stdout.
//!
//! `println!` panics when stdout's reader has gone away (`offstage list | head -1`: `head`
//! exits after one line and the pipe closes). Every write here is a `write!` whose error comes
//! back as a [`Failure`]: a closed pipe becomes [`Failure::BrokenPipe`], which `main` turns
//! into a quiet exit 0, as Unix tools do.
//!
//! ```ignore
//! let mut out = Out::stdout();
//! out.line(format_args!("{id} {status}"))?;
//! ```

use std::fmt::Display;
use std::io::{self, Write};

use serde::Serialize;

use super::Failure;

/// A command's output: stdout, or any writer in a test.
pub(crate) struct Out {
    sink: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl Out {
    /// Writes to stdout (line-buffered: each line reaches the reader as it is written).
    pub(crate) fn stdout() -> Self {
        Self::to(io::stdout())
    }

    /// Writes to `sink`.
    pub(crate) fn to(sink: impl Write + Send + 'static) -> Self {
        Self {
            sink: Box::new(sink),
        }
    }

    /// Writes `line` and a newline.
    pub(crate) fn line(&mut self, line: impl Display) -> Result<(), Failure> {
        writeln!(self.sink, "{line}")?;
        Ok(())
    }

    /// Writes `text` as it is (a table that ends its own lines).
    pub(crate) fn text(&mut self, text: &str) -> Result<(), Failure> {
        self.sink.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Writes `value` as indented JSON, for `--json`.
    pub(crate) fn json(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| format!("cannot write the answer as JSON: {e}"))?;
        self.line(text)
    }

    /// Writes `value` as JSON on one line, for a stream of them (`logs --follow --json`).
    pub(crate) fn json_line(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string(value)
            .map_err(|e| format!("cannot write the answer as JSON: {e}"))?;
        self.line(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that has gone away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_a_broken_pipe_and_not_a_message() {
        let mut out = Out::to(Closed);
        assert!(matches!(out.line("x"), Err(Failure::BrokenPipe)));
        assert!(matches!(out.json(&[1, 2]), Err(Failure::BrokenPipe)));
    }
}
