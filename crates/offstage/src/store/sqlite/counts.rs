//! Task counts by type and status, kept by the writer.
//!
//! Every write that launches, moves or deletes a task adds its change to its transaction's
//! [`Tally`]; the writer adds the tally to `offstage_task_counts` just before it commits, in
//! the same transaction, and drops it when the transaction rolls back. So the table is exact
//! at every commit, and reading the counts reads a row per task type and status, however many
//! tasks the store holds. A tally costs a launch a hash lookup: thousands of launches in one
//! transaction share one small write.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::error::Error;
use crate::status::Status;

/// The changes to the counts made by one transaction's writes so far: per task type, a
/// difference per status (in [`Status::ALL`] order).
#[derive(Debug, Default)]
pub(super) struct Tally(HashMap<String, [i64; 6]>);

fn index(status: Status) -> usize {
    Status::ALL
        .iter()
        .position(|s| *s == status)
        .expect("every status is in Status::ALL")
}

impl Tally {
    /// `n` more (or, negative, fewer) tasks named `name` are `status`.
    pub(super) fn add(&mut self, name: &str, status: Status, n: i64) {
        match self.0.get_mut(name) {
            Some(row) => row[index(status)] += n,
            None => {
                let mut row = [0; 6];
                row[index(status)] = n;
                self.0.insert(name.to_owned(), row);
            }
        }
    }

    /// A task named `name` went from `from` to `to`.
    pub(super) fn moved(&mut self, name: &str, from: Status, to: Status) {
        if from != to {
            self.add(name, from, -1);
            self.add(name, to, 1);
        }
    }

    /// Writes the tally into `offstage_task_counts` (inside the writer's open transaction) and
    /// empties it.
    pub(super) fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut add = conn.prepare_cached(
            "INSERT INTO offstage_task_counts (name, status, n) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name, status) DO UPDATE SET n = n + excluded.n",
        )?;
        for (name, row) in self.0.drain() {
            for (status, n) in Status::ALL.iter().zip(row) {
                if n != 0 {
                    add.execute(params![name, status.as_str(), n])?;
                }
            }
        }
        Ok(())
    }

    /// Forgets the tally of a transaction that rolled back.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

pub(super) async fn counts(store: &SqliteStore) -> Result<Vec<(String, Status, u64)>, Error> {
    store
        .read(|conn| {
            conn.prepare_cached(
                "SELECT name, status, n FROM offstage_task_counts WHERE n > 0 \
                 ORDER BY name, status",
            )?
            .query_map([], |row| {
                let status: String = row.get(1)?;
                let count: i64 = row.get(2)?;
                let status = status.parse::<Status>().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok((row.get(0)?, status, count as u64))
            })?
            .collect()
        })
        .await
}
