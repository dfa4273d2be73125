//! Identifiers: [`TaskId`] names one task, [`NodeId`] one running runtime.
//!
//! Both are UUIDv7, so they sort by creation time and read as plain text
//! (`0192f1c3-7d5e-7a8b-9c1d-2e3f4a5b6c7d`) everywhere: in the store, the API and logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind};

macro_rules! time_ordered_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id, ordered after every id made before it by this process.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as a UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidId,
                        format!(
                            "`{s}` is not a {}: expected a UUID such as \
                             0192f1c3-7d5e-7a8b-9c1d-2e3f4a5b6c7d",
                            $what
                        ),
                    )
                })
            }
        }
    };
}

time_ordered_id!(
    /// The id of one task: time-ordered, unique, stable across restarts.
    TaskId,
    "task id"
);

time_ordered_id!(
    /// The id of one runtime (a *node*). A new one is made every time a runtime starts, so a
    /// restarted process is a new node and can tell its predecessor's leftovers apart.
    NodeId,
    "node id"
);

time_ordered_id!(
    /// The id of one bulk action ([`crate::ActionRecord`]): time-ordered, like a task's.
    ActionId,
    "action id"
);
impl TaskId {
    /// The first id [`TaskId::new`] could make at `at`: every task id made at or after `at` (by
    /// this machine's clock) is at least this one. The stores bound their scans by time with
    /// it, as ids are the primary key and sort in time order.
    pub(crate) fn first_at(at: chrono::DateTime<chrono::Utc>) -> Self {
        let millis = at.timestamp_millis().max(0) as u64;
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_sort_by_time() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<TaskId>().unwrap(), a);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn malformed_id_says_what_an_id_looks_like() {
        let err = "nope".parse::<TaskId>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidId);
        assert!(err.to_string().contains("expected a UUID"), "{err}");
    }
}
