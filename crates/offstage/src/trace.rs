//! **Trace context**: the W3C trace context (`traceparent`, and `tracestate` with it) current
//! when a task was launched, kept with the task.
//!
//! A launch takes it from [`crate::Launch::trace_parent`] (what an app without OpenTelemetry
//! passes on from its own request), from the `traceparent` header of `POST /api/tasks`, from
//! the launching task (a child carries its parent's), and, with the `otel` feature, from the
//! current `tracing` span's OpenTelemetry context. The record keeps it as text
//! ([`crate::TaskRecord::traceparent`]); [`crate::TaskRecord::trace_id`] reads the trace id
//! out of it. With the `otel` feature and a `tracing-opentelemetry` layer in the app's
//! subscriber, each attempt of the task is a span in that trace (`runtime/spans.rs`).
//!
//! ```
//! let parent = offstage::TraceContext::parse(
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
//!     Some("vendor=opaque"),
//! )
//! .unwrap();
//! assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(parent.sampled());
//! ```

use std::fmt;

use crate::error::{Error, ErrorKind};

/// Longest `tracestate` kept (the W3C limit: 32 members of at most 256 characters, which
/// vendors are asked to keep within 512).
pub const MAX_TRACESTATE_CHARS: usize = 512;

/// A W3C trace context: a `traceparent` (version, trace id, parent span id, flags) and its
/// `tracestate`, checked and normalized to version `00`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// Reads a `traceparent` (and its `tracestate`) as the W3C Trace Context specification
    /// says: lowercase hex, a trace id and a span id that are not all zeros, version `ff`
    /// refused, a later version read for its first four fields. An error says what is wrong;
    /// an HTTP server that receives a bad header ignores it, as the specification asks.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, Error> {
        let traceparent = traceparent.trim();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "traceparent `{}` is not a W3C traceparent ({why}): give \
                     `00-<32 lowercase hex trace id>-<16 lowercase hex span id>-<2 hex flags>`, \
                     as an OpenTelemetry propagator writes it, or leave it out",
                    traceparent.chars().take(80).collect::<String>()
                ),
            )
        };
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !traceparent.is_ascii() {
            return Err(bad("it is not ASCII"));
        }
        if traceparent.len() < 55 {
            return Err(bad("too short"));
        }
        let (fields, rest) = traceparent.split_at(55);
        let version = &fields[0..2];
        if !hex(version) || version == "ff" {
            return Err(bad("the version is not two hex digits other than ff"));
        }
        if version == "00" && !rest.is_empty() {
            return Err(bad("version 00 has exactly four fields"));
        }
        if !rest.is_empty() && !rest.starts_with('-') {
            return Err(bad("the flags are not two hex digits"));
        }
        let bytes = fields.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(bad("the fields are not separated by `-`"));
        }
        let (trace_id, span_id, flags) = (&fields[3..35], &fields[36..52], &fields[53..55]);
        if !hex(trace_id) || trace_id.bytes().all(|b| b == b'0') {
            return Err(bad(
                "the trace id is not 32 lowercase hex digits, not all zero",
            ));
        }
        if !hex(span_id) || span_id.bytes().all(|b| b == b'0') {
            return Err(bad(
                "the span id is not 16 lowercase hex digits, not all zero",
            ));
        }
        if !hex(flags) {
            return Err(bad("the flags are not two hex digits"));
        }
        let tracestate = match tracestate.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(state)
                if state.len() <= MAX_TRACESTATE_CHARS
                    && state.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
            {
                Some(state.to_owned())
            }
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "tracestate is not a W3C tracestate: give at most \
                         {MAX_TRACESTATE_CHARS} printable ASCII characters (`vendor=value` \
                         pairs, comma-separated), or leave it out"
                    ),
                ))
            }
        };
        Ok(Self {
            traceparent: format!("00-{trace_id}-{span_id}-{flags}"),
            tracestate,
        })
    }

    /// The `traceparent` text, version `00`.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` text, if there is one.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The parent span's id: 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// True when the caller recorded its span (flag `01`): a sampler that follows its parent
    /// records the task's spans too.
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|flags| flags & 1 == 1)
    }

    /// Splits into the record's two columns.
    pub(crate) fn into_parts(self) -> (String, Option<String>) {
        (self.traceparent, self.tracestate)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent)
    }
}

/// The trace id inside a stored `traceparent` (already checked when it was stored).
pub(crate) fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.get(3..35)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_a_traceparent_and_normalizes_later_versions() {
        let cx = TraceContext::parse(GOOD, None).unwrap();
        assert_eq!(cx.traceparent(), GOOD);
        assert_eq!(cx.span_id(), "00f067aa0ba902b7");
        assert!(cx.sampled());
        let later = TraceContext::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what",
            None,
        )
        .unwrap();
        assert_eq!(
            later.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        assert!(!later.sampled());
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            let error = TraceContext::parse(bad, None).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(error.to_string().contains("give `00-"), "{error}");
        }
        let error = TraceContext::parse(GOOD, Some(&"x".repeat(600))).unwrap_err();
        assert!(error.to_string().contains("tracestate"), "{error}");
        assert_eq!(
            TraceContext::parse(GOOD, Some(" ")).unwrap().tracestate(),
            None
        );
    }
}
