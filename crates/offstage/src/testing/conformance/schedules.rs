//! Schedules: a cron tick launches exactly once however many nodes reach it, a pause holds on
//! every node and its ticks are not made up later, and a schedule's key skips a tick while
//! the previous launch is live. Paused time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::tasks::runtime_with;
use super::Backend;
use crate::schedule::Fired;
use crate::testing::wait_for_event;
use crate::{
    ErrorKind, Event, EventKind, LaunchOptions, ListFilter, OnConflict, Runtime, Schedule, Status,
    TaskRecord,
};

const EVERY_SECOND: &str = "test.every-second";

fn launched(name: &'static str) -> impl FnMut(&Event) -> bool {
    move |event| matches!(&event.kind, EventKind::Launched { task } if task.name == name)
}

async fn tasks_named(rt: &Runtime, name: &str) -> Vec<TaskRecord> {
    let filter = ListFilter {
        name: Some(name.to_owned()),
        limit: Some(1_000),
        ..ListFilter::default()
    };
    rt.list(&filter).await.unwrap()
}

/// Three nodes declare the same every-second schedule: it is stored once, each tick launches
/// one task, and three store handles racing for the same tick launch it once. Paused on one
/// node, no node launches; resumed, it goes on from the next tick without making up the
/// ticks it missed.
pub async fn a_cron_tick_launches_once_across_three_nodes(backend: &dyn Backend) {
    let database = backend.new_database();
    let declare = |builder: crate::RuntimeBuilder| {
        builder
            .schedule(Schedule::new(EVERY_SECOND, "* * * * * *", "test.echo").args(json!("tick")))
    };
    let a = runtime_with(backend, &database, declare).await;
    let b = runtime_with(backend, &database, declare).await;
    let c = runtime_with(backend, &database, declare).await;
    let listed = b.schedules().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let schedule = &listed[0];
    assert_eq!(
        (schedule.task.as_str(), schedule.paused),
        ("test.echo", false)
    );
    let next = schedule
        .next_tick_at
        .expect("an unpaused schedule has a next tick");
    assert!(
        next > b.now() && next <= b.now() + chrono::Duration::seconds(1),
        "{next}"
    );

    // Each second, the node whose clock crosses a tick first launches it; the others find it
    // taken. (In this test the nodes' clocks differ by how long each took to build, so two of
    // them may cross different ticks in one step: ticks are told apart by `run_at`.)
    let mut events = a.events();
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(1)).await;
        wait_for_event(&mut events, Duration::from_secs(30), launched("test.echo")).await;
    }
    // The record first: a node whose clock runs ahead may launch the next tick meanwhile.
    let record = c.schedule(EVERY_SECOND).await.unwrap();
    let ticked = tasks_named(&a, "test.echo").await;
    assert!(ticked.len() >= 3, "a task per tick: {ticked:?}");
    assert!(ticked.iter().all(|t| t.args == json!("tick")));
    assert!(
        ticked
            .iter()
            .all(|t| t.run_at.timestamp_subsec_micros() == 0),
        "run_at is the tick"
    );
    assert!(
        ticked.iter().any(|t| Some(t.id) == record.last_task_id),
        "{record:?}"
    );

    // At the store: three handles race for each of twenty ticks of another schedule.
    let stores = [
        backend.open(&database).await,
        backend.open(&database).await,
        backend.open(&database).await,
    ];
    let yearly = Schedule::new("test.race", "0 0 1 1 *", "test.noop");
    stores[0].put_schedule(&yearly, a.now()).await.unwrap();
    let base: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    for round in 0..20 {
        let tick = base + chrono::Duration::seconds(round);
        let fires = stores.iter().map(|store| {
            let task = queued("test.noop", a.now());
            async move {
                store
                    .fire_schedule("test.race", tick, &task, false)
                    .await
                    .unwrap()
            }
        });
        let fired = futures::future::join_all(fires).await;
        let launches = fired.iter().filter(|f| **f == Fired::Launched).count();
        assert_eq!(launches, 1, "tick {round}: {fired:?}");
        // A tick already taken is never taken again.
        let late = stores[1]
            .fire_schedule("test.race", tick, &queued("test.noop", a.now()), false)
            .await
            .unwrap();
        assert_eq!(late, Fired::NotFired);
    }
    // A paused schedule's tick is never taken, by any handle.
    let tick = base + chrono::Duration::seconds(20);
    stores[2]
        .pause_schedule("test.race", true, a.now())
        .await
        .unwrap();
    let task = queued("test.noop", a.now());
    assert_eq!(
        stores[0]
            .fire_schedule("test.race", tick, &task, false)
            .await
            .unwrap(),
        Fired::NotFired
    );
    stores[1]
        .pause_schedule("test.race", false, a.now())
        .await
        .unwrap();
    assert_eq!(
        stores[0]
            .fire_schedule("test.race", tick, &task, false)
            .await
            .unwrap(),
        Fired::Launched
    );

    // Paused through one node: no node launches, and its next tick is gone from the record.
    let paused = c.pause_schedule(EVERY_SECOND).await.unwrap();
    assert!(paused.paused && paused.next_tick_at.is_none(), "{paused:?}");
    tokio::time::advance(Duration::from_secs(5)).await;
    let resumed = b.resume_schedule(EVERY_SECOND).await.unwrap();
    assert!(!resumed.paused && resumed.next_tick_at.is_some());
    let resumed_at = resumed
        .last_tick_at
        .expect("a resume passes over the paused ticks");
    tokio::time::advance(Duration::from_secs(1)).await;
    let after_resume = move |event: &Event| {
        matches!(&event.kind, EventKind::Launched { task }
            if task.name == "test.echo" && task.run_at > resumed_at)
    };
    wait_for_event(&mut events, Duration::from_secs(30), after_resume).await;

    for rt in [&a, &b, &c] {
        rt.shutdown().await.unwrap();
    }
    // Every tick launched once, and none of those that passed while it was paused (two
    // seconds of slack for the nodes' clocks, which differ by how long each took to build).
    let ticked = tasks_named(&a, "test.echo").await;
    let mut ticks: Vec<_> = ticked.iter().map(|t| t.run_at).collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        ticked.len(),
        "a tick launched twice: {ticked:?}"
    );
    let window = paused.updated_at + chrono::Duration::seconds(2)..=resumed_at;
    let during = ticked.iter().filter(|t| window.contains(&t.run_at)).count();
    assert_eq!(during, 0, "launched while paused ({window:?}): {ticked:?}");
}

/// A schedule with a key and `on_conflict: reject` launches nothing at a tick while its
/// previous launch is still running, and launches again once it has ended; bad schedules are
/// refused with what to change.
pub async fn a_scheduled_key_skips_ticks_while_the_last_launch_is_live(backend: &dyn Backend) {
    let database = backend.new_database();
    let options = LaunchOptions {
        key: Some("one-at-a-time".into()),
        on_conflict: Some(OnConflict::Reject),
        ..LaunchOptions::default()
    };
    let rt = runtime_with(backend, &database, |b| b).await;
    let schedule =
        Schedule::new("test.blocker", "* * * * * *", "test.until_cancelled").options(options);
    rt.put_schedule(schedule).await.unwrap();
    let mut events = rt.events();
    tokio::time::advance(Duration::from_secs(1)).await;
    let first = wait_for_event(
        &mut events,
        Duration::from_secs(30),
        launched("test.until_cancelled"),
    )
    .await;
    crate::testing::wait_started(&mut events, first.task_id).await;
    // Ticks come and go while it runs; each finds it live and launches nothing.
    for _ in 0..3 {
        let before = rt.schedule("test.blocker").await.unwrap().last_tick_at;
        tokio::time::advance(Duration::from_secs(1)).await;
        let record = next_tick_taken(&rt, "test.blocker", before).await;
        assert_eq!(record.last_task_id, Some(first.task_id), "{record:?}");
    }
    rt.kill(first.task_id).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let second = wait_for_event(
        &mut events,
        Duration::from_secs(30),
        launched("test.until_cancelled"),
    )
    .await;
    assert_ne!(second.task_id, first.task_id);
    let all = tasks_named(&rt, "test.until_cancelled").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].status, Status::Killed);

    let bad = rt
        .put_schedule(Schedule::new("test.bad", "every minute", "test.noop"))
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
    assert!(bad.message().contains("minute hour"), "{bad}");
    let unknown = rt
        .put_schedule(Schedule::new("test.bad", "* * * * *", "test.nope"))
        .await
        .unwrap_err();
    assert!(
        unknown.message().contains("test.noop"),
        "lists the known types: {unknown}"
    );
    let wrong_args = rt
        .put_schedule(Schedule::new("test.bad", "* * * * *", "test.double").args(json!("x")))
        .await
        .unwrap_err();
    assert_eq!(wrong_args.kind(), ErrorKind::InvalidArgs, "{wrong_args}");
    let missing = rt.pause_schedule("test.nope").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    rt.delete_schedule("test.blocker").await.unwrap();
    assert!(rt.schedules().await.unwrap().is_empty());
    rt.kill(second.task_id).await.unwrap();
    rt.shutdown().await.unwrap();
}

/// A schedule created between two ticks first launches at the next one, never at the tick
/// just before it existed (nor at one from before the node started); so does one whose cron
/// expression changed: its ticks count from the change. (Regression: the ticker counted from
/// the node's start, so a nightly schedule created in the afternoon ran at once.)
pub async fn a_new_schedule_first_fires_at_its_next_tick(backend: &dyn Backend) {
    const EVERY_TEN: &str = "*/10 * * * * *";
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b).await;
    let changed = Schedule::new("test.changed", "0 0 1 1 *", "test.echo").args(json!("changed"));
    rt.put_schedule(changed.clone()).await.unwrap();
    // At least one tick of every ten seconds passes after the node started.
    tokio::time::advance(Duration::from_secs(15)).await;
    let created = rt.now();
    let fresh = rt
        .put_schedule(Schedule::new("test.fresh", EVERY_TEN, "test.echo").args(json!("fresh")))
        .await
        .unwrap();
    let last = fresh.last_tick_at.expect("a new schedule counts from now");
    assert!(last >= created, "{fresh:?}");
    let next = fresh
        .next_tick_at
        .expect("an unpaused schedule has a next tick");
    assert!(
        next > created && next <= created + chrono::Duration::seconds(10),
        "{fresh:?}"
    );
    let moved = rt
        .put_schedule(Schedule {
            cron: EVERY_TEN.into(),
            ..changed
        })
        .await
        .unwrap();
    assert!(
        moved.last_tick_at.is_some_and(|at| at >= created),
        "a changed cron counts from the change: {moved:?}"
    );

    // A second at a time, so the ticker's sleep is never overtaken by a jump of the clock;
    // each step reads the store, which gives the ticker's own store calls time to finish.
    let mut launched = Vec::new();
    for _ in 0..600 {
        tokio::time::advance(Duration::from_secs(1)).await;
        launched = tasks_named(&rt, "test.echo").await;
        let has = |args: &str| launched.iter().any(|t| t.args == json!(args));
        if has("fresh") && has("changed") {
            break;
        }
    }
    rt.shutdown().await.unwrap();
    let launched = tasks_named(&rt, "test.echo")
        .await
        .into_iter()
        .chain(launched);
    for task in launched {
        assert!(
            task.run_at > created,
            "{} launched the tick at {} from before it was created or changed at {created}",
            task.args,
            task.run_at
        );
        assert_eq!(task.run_at.timestamp() % 10, 0, "{task:?}");
    }
    for args in ["fresh", "changed"] {
        let all = tasks_named(&rt, "test.echo").await;
        assert!(
            all.iter().any(|t| t.args == json!(args)),
            "`{args}` launched at its next tick: {all:?}"
        );
    }
}

/// Schedule `name` once its latest tick is no longer `before`. The clock is held, so this
/// only waits for the ticker's store round trips.
async fn next_tick_taken(
    rt: &Runtime,
    name: &str,
    before: Option<DateTime<Utc>>,
) -> crate::ScheduleRecord {
    loop {
        let record = rt.schedule(name).await.unwrap();
        if record.last_tick_at != before {
            return record;
        }
        tokio::task::yield_now().await;
    }
}

/// A queued task record, as a launch would make it.
fn queued(name: &str, now: DateTime<Utc>) -> TaskRecord {
    TaskRecord {
        name: name.to_owned(),
        status: Status::Queued,
        return_value: None,
        launched_at: now,
        run_at: now,
        started_at: None,
        finished_at: None,
        attempt: 0,
        ..crate::testing::sample_record(crate::TaskId::new())
    }
}
