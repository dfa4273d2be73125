//! Limits on the text a caller hands Offstage: task-type names, keys, owners, schedule names
//! and shared-document names.
//!
//! One rule for every surface (the Rust API, HTTP, the CLI) and every store: a bounded number
//! of characters, and no control characters. PostgreSQL refuses a NUL in `text` outright, and a
//! newline or an escape sequence in a name would garble logs, tables and the dashboard; a
//! 100,000-character key would be stored, indexed and sent with every event of its task. So
//! the runtime checks before the store sees anything, and the check's message says the limit.
//!
//! ```
//! let error = offstage::limits::check_text("key", "a\0b", offstage::limits::MAX_KEY_CHARS)
//!     .unwrap_err();
//! assert_eq!(error.kind(), offstage::ErrorKind::InvalidArgument);
//! assert!(error.message().contains("control character"));
//! ```

use crate::error::{Error, ErrorKind};

/// The largest worker protocol message, in bytes: what a worker connection's transport must
/// accept (a state at its cap, a long log line or return value, with room to spare).
pub use crate::worker::protocol::MAX_MESSAGE_BYTES as MAX_WORKER_MESSAGE_BYTES;

/// The longest key a task may have, in characters.
pub const MAX_KEY_CHARS: usize = 1_024;
/// The longest owner a task may have, in characters.
pub const MAX_OWNER_CHARS: usize = 256;
/// The longest name of a task type, a schedule, a shared document or a signal, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Checks that `value` (the caller's `what`: "key", "owner", "task type name", ...) is at most
/// `max` characters and has no control characters (NUL, newlines, tabs, escapes). The error
/// says which rule was broken and shows the start of the value, escaped.
pub fn check_text(what: &str, value: &str, max: usize) -> Result<(), Error> {
    let why = if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
        format!(
            "it has a control character ({}) at byte {at}",
            c.escape_unicode()
        )
    } else {
        let count = value.chars().count();
        if count <= max {
            return Ok(());
        }
        format!("it is {count} characters long")
    };
    Err(Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "the {what} {} is not accepted: {why}. The {what} may have at most {max} characters \
             and no control characters",
            preview(value)
        ),
    ))
}

/// The start of `value`, escaped and quoted, short enough for a message.
fn preview(value: &str) -> String {
    const SHOWN: usize = 40;
    let mut shown: String = value.chars().take(SHOWN).collect();
    if value.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    format!("`{}`", shown.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_and_its_message() {
        assert!(check_text("key", "report-42", MAX_KEY_CHARS).is_ok());
        assert!(check_text("key", "", MAX_KEY_CHARS).is_ok());
        // Characters, not bytes: 200 three-byte characters are a 200-character name.
        assert!(check_text("name", &"é".repeat(200), MAX_NAME_CHARS).is_ok());
        let long = check_text("key", &"k".repeat(100_000), MAX_KEY_CHARS).unwrap_err();
        assert!(long.message().contains("100000 characters long"), "{long}");
        assert!(long.message().contains("at most 1024 characters"), "{long}");
        assert!(
            long.message().len() < 300,
            "the value is not echoed whole: {long}"
        );
        for bad in ["a\0b", "line\nbreak", "tab\there", "\u{1b}[31mred"] {
            let error = check_text("owner", bad, MAX_OWNER_CHARS).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument);
            assert!(error.message().contains("control character"), "{error}");
        }
        let nul = check_text("owner", "a\0", MAX_OWNER_CHARS).unwrap_err();
        assert!(nul.message().contains(r"(\u{0}) at byte 1"), "{nul}");
    }
}
