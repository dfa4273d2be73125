//! The conformance suite: what every store, and the runtime on top of it, must do.
//!
//! Written once, run on every backend: a backend's test file implements [`Backend`] and calls
//! [`crate::conformance_tests!`], which expands into one named `#[tokio::test]` per check
//! (`sqlite::kill_running_task`, later `postgres::kill_running_task`). Change semantics here
//! first.
//!
//! A backend that needs a server (PostgreSQL) is ignored, with the reason, when its variable is
//! not set (see [`crate::conformance_tests!`]); the databases the tests create are removed when
//! each test ends, passed or failed (by the thread-local list in `databases.rs`).
//!
//! ```text
//! struct Sqlite;
//! #[async_trait::async_trait]
//! impl offstage::testing::conformance::Backend for Sqlite { /* ... */ }
//! offstage::conformance_tests!(Sqlite);
//! ```

mod actions;
mod checkpoints;
mod children;
mod concurrency_keys;
mod databases;
mod durability;
mod fencing;
mod fleet;
mod history;
mod keys;
mod lifecycle;
mod limiters;
mod retries;
mod schedules;
mod shared;
mod signals;
mod spawned;
mod stats;
mod stopping;
mod tasks;
mod trace;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::actions::*;
pub use self::checkpoints::*;
pub use self::children::*;
pub use self::concurrency_keys::*;
pub use self::durability::*;
pub use self::fencing::*;
pub use self::fleet::*;
pub use self::history::*;
pub use self::keys::*;
pub use self::lifecycle::*;
pub use self::limiters::*;
pub use self::retries::*;
pub use self::schedules::*;
pub use self::shared::*;
pub use self::signals::*;
pub use self::spawned::*;
pub use self::stats::*;
pub use self::stopping::*;
pub use self::tasks::{runtime, runtime_with};
pub use self::trace::*;
use crate::store::Store;

// ANCHOR: backend
/// A database backend under test.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Names a new, empty database (a file path, a schema) for one test. The backends here
    /// remove it when the test ends, passed or failed, and sweep what a killed run left.
    fn new_database(&self) -> String;

    /// Opens the database named `database`; opening it twice gives two independent handles,
    /// as two processes would have.
    async fn open(&self, database: &str) -> Arc<dyn Store>;
}
// ANCHOR_END: backend

/// The SQLite backend, on files in the system's temporary directory.
#[cfg(feature = "sqlite")]
#[derive(Debug, Default)]
pub struct SqliteBackend;

#[cfg(feature = "sqlite")]
#[async_trait]
impl Backend for SqliteBackend {
    fn new_database(&self) -> String {
        databases::sqlite_file().to_string_lossy().into_owned()
    }

    async fn open(&self, database: &str) -> Arc<dyn Store> {
        Arc::new(
            crate::store::sqlite::SqliteStore::open(database)
                .await
                .expect("opening SQLite"),
        )
    }
}

/// The PostgreSQL backend: every test database is a new schema of the database at `url`
/// (the schema is created when the store first opens it), so tests run side by side.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    /// The database, e.g. `postgres://postgres@127.0.0.1:5432/test`.
    pub url: String,
}

#[cfg(feature = "postgres")]
impl PostgresBackend {
    /// The environment variable naming the database the PostgreSQL suites run against.
    pub const ENV: &'static str = "OFFSTAGE_TEST_POSTGRES";

    /// The backend on the database `OFFSTAGE_TEST_POSTGRES` names.
    ///
    /// A test that needs PostgreSQL is marked ignored when the variable was not set at build
    /// time (`#[cfg_attr(not(offstage_test_postgres), ignore = "…")]`, the `cfg` set by the
    /// calling crate's build script), so `cargo test` counts it as skipped.
    ///
    /// # Panics
    ///
    /// When the variable is unset or not a `postgres://` URL (a test run with
    /// `--include-ignored`, say), saying how to set it: such a test must fail, not pass
    /// having tested nothing.
    pub fn from_env() -> Self {
        match std::env::var(Self::ENV) {
            Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self { url }
            }
            Ok(other) => panic!(
                "{}={other:?} is not a PostgreSQL URL: set it to postgres://user@host:5432/db",
                Self::ENV
            ),
            Err(_) => panic!(
                "this test needs PostgreSQL and {} is not set: set it to \
                 postgres://user@host:5432/db (an empty database the tests may create schemas \
                 in), or leave the test ignored",
                Self::ENV
            ),
        }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl Backend for PostgresBackend {
    fn new_database(&self) -> String {
        let schema = databases::schema(&self.url);
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={schema}", self.url)
    }

    async fn open(&self, database: &str) -> Arc<dyn Store> {
        // Small pools: dozens of tests run at once against one server.
        let options = crate::store::postgres::PostgresOptions {
            max_connections: 4,
            ..Default::default()
        };
        Arc::new(
            crate::store::postgres::PostgresStore::open_with(database, options)
                .await
                .expect("opening PostgreSQL"),
        )
    }
}

/// Expands into one test per conformance check, for `$backend` (an expression of a type that
/// implements [`Backend`], evaluated in each test). Checks that depend on time run with
/// tokio's clock paused.
///
/// An attribute before the backend goes on every test. A backend that needs a server the
/// environment may not have uses it to be ignored, with the reason, unless the calling
/// crate's build script saw the server's variable:
///
/// ```text
/// offstage::conformance_tests!(
///     #[cfg_attr(not(offstage_test_postgres), ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run")]
///     PostgresBackend::from_env()
/// );
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (@all [$attr:meta] $backend:expr) => {
        $crate::conformance_tests!(@real [$attr] $backend;
            launch_runs_and_completes,
            typed_launch_runs,
            unknown_task_type_lists_registered_names,
            args_that_do_not_fit_are_rejected_at_launch,
            launch_options_are_kept,
            racing_launches_with_a_key_reject_all_but_one,
            racing_launches_with_a_key_return_the_existing_task,
            racing_launches_with_a_key_supersede_leave_one_running,
            on_conflict_needs_a_key,
            bad_keys_owners_and_names_are_refused_alike,
            a_concurrency_limit_of_one_holds_across_two_nodes,
            spawned_tasks_are_named_unique_and_cancellable,
            unknown_id_is_not_found,
            state_is_live_for_readers_and_saved_at_the_end,
            oversized_state_is_an_error_the_task_can_handle,
            logs_are_sequenced_and_capture_tracing,
            log_cap_leaves_a_truncation_mark,
            failed_task_keeps_its_error,
            panic_fails_the_task_and_the_runtime_keeps_running,
            kill_running_task_that_cooperates,
            kill_after_completion_stays_completed,
            kill_queued_task_never_runs,
            concurrency_limit_then_priority_then_launch_order,
            list_filters_and_pages_newest_first,
            purge_deletes_finished_before,
            history_survives_reopening,
            dead_node_tasks_are_marked_missing,
            a_dead_nodes_task_runs_again_when_its_type_retries,
            recovery_marks_each_task_exactly_once,
            live_node_tasks_are_never_marked_missing,
            kill_reaches_a_task_on_another_node,
            events_of_a_task_on_another_node_arrive_live,
            a_task_queued_on_a_full_node_runs_on_another,
            events_resume_after_a_sequence_number,
            ten_thousand_tasks_none_lost,
            shared_increments_from_100_tasks_on_two_nodes_lose_no_update,
            a_lock_holder_killed_mid_lock_releases_it,
            a_dead_node_s_shared_lock_is_freed_by_recovery,
            shared_snapshots_and_changes_reach_every_node,
            saving_after_the_lock_was_taken_away_fails_with_lock_lost,
            a_node_declared_dead_can_no_longer_change_its_tasks,
            orphaned_tasks_are_swept_within_the_node_timeout,
            counts_are_exact_through_every_step,
            purge_steps_delete_oldest_first,
            count_matching_counts_what_the_list_lists,
            retention_applies_each_types_rule,
            a_maintenance_turn_goes_to_one_node,
            stats_rows_round_trip_and_merge_across_nodes,
            stats_count_a_dead_node_s_tasks_on_the_node_that_recovered_them,
            a_paused_type_is_never_claimed_until_resumed,
            pausing_a_type_holds_its_tasks_on_every_node_until_resumed,
            node_reports_round_trip,
            waiting_reasons_say_why_a_task_waits,
            a_rerun_is_a_new_task_linked_to_the_finished_one,
            a_bulk_kill_ends_every_live_match_and_is_recorded,
            a_bulk_rerun_launches_one_rerun_of_each_finished_match,
            a_bulk_purge_deletes_the_finished_matches,
            a_bulk_rerun_respects_the_types_concurrency_limit,
            an_action_whose_node_stopped_reads_failed,
            a_checkpoint_is_saved_at_once_and_only_by_the_task_s_node,
            a_checkpoint_is_kept_through_every_requeue_and_returned_by_every_claim,
            a_retried_task_starts_from_its_checkpoint,
            a_dead_node_s_task_resumes_from_its_checkpoint,
            a_rerun_from_its_checkpoint_starts_where_the_original_stopped,
            a_checkpoint_over_the_cap_or_of_another_shape_is_an_error_that_says_why,
            a_killed_task_keeps_its_checkpoint_for_a_rerun,
            // Child tasks
            a_parent_launches_children_and_waits_for_their_results,
            a_parent_waits_for_two_hundred_children,
            killing_a_parent_kills_its_children_and_theirs,
            a_parent_that_ends_stops_its_children_but_not_detached_ones,
            the_sweep_finds_and_kills_children_their_parent_left_behind,
            a_missing_parent_s_children_are_killed_unless_it_runs_again,
            a_waiting_parent_stops_waiting_when_killed,
            a_child_whose_node_died_is_a_failure_its_parent_handles,
            // Signals
            signals_are_kept_and_received_oldest_first_once_per_attempt,
            limited_claims_do_not_count_tasks_waiting_for_a_signal,
            a_type_limited_to_2_has_50_tasks_waiting_for_a_signal,
            a_waiting_task_is_killed_or_woken_from_another_node,
            a_task_whose_node_died_while_waiting_receives_the_signal_when_it_runs_again,
            a_spawned_task_waits_for_a_signal_and_takes_no_slot_after,
            // Concurrency keys
            a_key_limit_holds_across_two_handles,
            keys_take_turns_so_a_backlog_holds_no_other_key_back,
            counts_per_key_follow_every_step,
            a_dead_node_s_places_under_a_key_come_back,
            a_paused_keyed_type_is_not_claimed,
            the_concurrency_key_comes_from_the_launch_the_owner_or_an_arg,
            a_full_key_holds_its_own_tasks_and_says_so,
            // Limiters
            a_limiter_s_bucket_refills_and_never_passes_its_burst,
            concurrent_holders_wait_for_a_release,
            two_nodes_share_one_limiter,
            a_dead_node_s_limiter_holds_are_freed,
            a_task_waiting_for_a_limiter_is_killed_and_unknown_names_say_how_to_define,
            // Trace context
            a_launch_keeps_its_trace_context,
            a_child_is_launched_in_its_parents_trace,
            a_rerun_starts_a_new_trace
        );
        $crate::conformance_tests!(@paused [$attr] $backend;
            kill_task_that_ignores_cancellation_aborts_after_grace,
            kill_with_zero_grace_aborts_at_once,
            timeout_fails_with_kind_timeout,
            run_at_is_honoured,
            a_failing_task_retries_with_backoff_then_completes,
            a_cron_tick_launches_once_across_three_nodes,
            a_scheduled_key_skips_ticks_while_the_last_launch_is_live,
            a_new_schedule_first_fires_at_its_next_tick,
            shutdown_drains_then_interrupts,
            a_lock_wait_gives_up_after_its_timeout,
            a_node_declared_dead_stops_its_tasks_and_rejoins,
            stats_count_what_tasks_did_and_how_long_they_waited,
            a_paced_bulk_rerun_launches_no_faster_than_asked,
            a_signal_sent_early_is_received_at_once_and_a_timeout_is_an_error,
            a_task_that_backs_off_runs_again_without_counting_an_attempt
        );
    };
    (@real [$attr:meta] $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[$attr]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                $crate::testing::conformance::$name(&backend).await
            }
        )*
    };
    (@paused [$attr:meta] $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[$attr]
            #[tokio::test(start_paused = true)]
            async fn $name() {
                let backend = $backend;
                let _hold = $crate::testing::hold_clock();
                $crate::testing::conformance::$name(&backend).await
            }
        )*
    };
    (#[$attr:meta] $backend:expr) => {
        $crate::conformance_tests!(@all [$attr] $backend);
    };
    ($backend:expr) => {
        // `any()` is false: no test of this backend is ignored.
        $crate::conformance_tests!(@all [cfg_attr(any(), ignore)] $backend);
    };
}
