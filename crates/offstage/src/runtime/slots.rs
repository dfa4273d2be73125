//! **Slots**: how many tasks this node runs at once, and who gets a slot that frees up.
//!
//! A task that runs on this node holds a [`Permit`] from start to the end of its body; dropping
//! the permit frees the slot, so a slot can neither leak nor be freed twice. Launches that can
//! start at once take a permit directly ([`Slots::try_acquire`]); the claimer reserves a batch
//! ([`Slots::reserve`]) before it claims queued tasks from the store, and hands one permit to
//! each task it claimed.
//!
//! While tasks may be waiting in the store (the *backlog*), a freed slot is not returned to the
//! pool, where the next launch would take it: it is handed to the claimer, which claims the
//! queued tasks in priority order. So a launch never overtakes a task that was queued first.
//!
//! A running task that waited for a signal gave its permit back meanwhile; when it goes on, it
//! takes one again with [`Slots::acquire`], and goes first: a freed slot is handed to such a
//! task before the claimer or a launch, since it was running already.
//!
//! ```text
//! launch ──try_acquire──► Permit ──(body ends)──► drop ──► resuming? to them : backlog? handoff : free
//! claimer ──reserve(n)──► Reservation ──take()──► Permit per claimed task; the rest is freed
//! resumer ──acquire().await──► Permit (a free slot, or the next one freed)
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The slots of one node (see the module docs).
#[derive(Debug)]
pub(crate) struct Slots {
    /// The most tasks running at once (`Config::max_concurrency`).
    max: usize,
    /// Slots in use: held by permits, reserved by the claimer, or handed off to it.
    used: AtomicUsize,
    /// True when due tasks may be waiting in the store: a slot that frees up then goes to the
    /// claimer (through `handoff`) instead of to whichever launch comes next.
    backlog: AtomicBool,
    /// Slots freed while there was a backlog, still counted in `used`, kept for the claimer's
    /// next reservation.
    handoff: AtomicUsize,
    /// Wakes the claimer: a slot freed up, or a task was queued.
    wake: Notify,
    /// Tasks back from a wait for a signal, waiting in `acquire` for a slot: while there are
    /// any, a freed slot goes to them (through `resume_handoff`) before anyone else.
    resuming: AtomicUsize,
    /// Slots freed for resuming tasks, still counted in `used`, not yet taken by one.
    resume_handoff: AtomicUsize,
    /// Wakes resuming tasks: a slot was handed to them, or freed to all.
    resumed: Notify,
}

impl Slots {
    /// `max` slots, all free. The backlog starts set: tasks queued before this node started
    /// may be waiting.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
            backlog: AtomicBool::new(true),
            handoff: AtomicUsize::new(0),
            wake: Notify::new(),
            resuming: AtomicUsize::new(0),
            resume_handoff: AtomicUsize::new(0),
            resumed: Notify::new(),
        })
    }

    /// A permit for one task, if a slot is free.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.take_free().then(|| Permit {
            slots: Arc::clone(self),
        })
    }

    /// A permit for a task that goes on after a wait for a signal: a free slot at once, or the
    /// next one freed (before the claimer and launches get it). Cancel-safe: a slot handed to
    /// a caller that went away is passed on.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        self.resuming.fetch_add(1, Ordering::SeqCst);
        let _leaving = Resuming(Arc::clone(self));
        loop {
            let woken = self.resumed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if take_one(&self.resume_handoff) || self.take_free() {
                return Permit {
                    slots: Arc::clone(self),
                };
            }
            woken.await;
        }
    }

    /// For the claimer: the slots handed off to it, plus free ones, up to `most`.
    pub(crate) fn reserve(self: &Arc<Self>, most: usize) -> Reservation {
        let mut count = self.handoff.swap(0, Ordering::AcqRel);
        while count < most && self.take_free() {
            count += 1;
        }
        Reservation {
            slots: Arc::clone(self),
            count,
        }
    }

    /// Says whether due tasks may be waiting in the store (see `backlog`).
    pub(crate) fn set_backlog(&self, backlog: bool) {
        self.backlog.store(backlog, Ordering::Release);
    }

    /// Tasks may be due in the store (queued here or by another node, or a retry): freed
    /// slots go to the claimer from now on, and it claims at once.
    pub(crate) fn wake_claimer(&self) {
        self.set_backlog(true);
        self.wake.notify_one();
    }

    /// Wakes the claimer without claiming any slot for it: a task was queued for later, and
    /// the claimer's next sleep may be shorter.
    pub(crate) fn remind_claimer(&self) {
        self.wake.notify_one();
    }

    /// The claimer's wake-up. Create it before looking for work, so none is lost in between.
    pub(crate) fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// How many slots are in use.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn take_free(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.max).then_some(used + 1)
            })
            .is_ok()
    }

    /// A slot whose task ended (or began to wait for a signal): to a resuming task if one
    /// waits, else to the claimer if tasks are waiting in the store, otherwise to all.
    fn release(&self) {
        if self.resuming.load(Ordering::SeqCst) > 0 {
            self.resume_handoff.fetch_add(1, Ordering::SeqCst);
            // The last resumer may have left since the look: if so, the slot is not theirs.
            if self.resuming.load(Ordering::SeqCst) > 0 || !take_one(&self.resume_handoff) {
                self.resumed.notify_one();
                return;
            }
        }
        if self.backlog.load(Ordering::Acquire) {
            self.handoff.fetch_add(1, Ordering::AcqRel);
        } else {
            self.used.fetch_sub(1, Ordering::SeqCst);
            self.wake_resumers();
        }
        self.wake.notify_one();
    }

    /// A slot went back to the pool: a resumer that looked just before must look again.
    fn wake_resumers(&self) {
        if self.resuming.load(Ordering::SeqCst) > 0 {
            self.resumed.notify_one();
        }
    }
}

/// Takes one from `count` if it is above zero.
fn take_one(count: &AtomicUsize) -> bool {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A caller of [`Slots::acquire`], counted in `resuming` while it waits. When it leaves
/// (with a permit, or dropped), a slot handed to resumers and left over is passed on.
struct Resuming(Arc<Slots>);

impl Drop for Resuming {
    fn drop(&mut self) {
        let slots = &self.0;
        slots.resuming.fetch_sub(1, Ordering::SeqCst);
        if slots.resuming.load(Ordering::SeqCst) == 0 && take_one(&slots.resume_handoff) {
            slots.release();
        }
    }
}

/// One task's slot, freed when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    slots: Arc<Slots>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.slots.release();
    }
}

/// Slots the claimer reserved before claiming. Each claimed task takes one as its permit;
/// those left when this is dropped were not needed and go straight back to the pool, without
/// waking the claimer (it was the one that did not need them).
#[derive(Debug)]
pub(crate) struct Reservation {
    slots: Arc<Slots>,
    count: usize,
}

impl Reservation {
    /// How many slots are still reserved.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// One reserved slot as a task's permit, if any is left.
    pub(crate) fn take(&mut self) -> Option<Permit> {
        self.count = self.count.checked_sub(1)?;
        Some(Permit {
            slots: Arc::clone(&self.slots),
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.slots.used.fetch_sub(self.count, Ordering::SeqCst);
        if self.count > 0 {
            self.slots.wake_resumers();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_maximum_and_free_their_slot_when_dropped() {
        let slots = Slots::new(2);
        slots.set_backlog(false);
        let a = slots.try_acquire().expect("first slot");
        let _b = slots.try_acquire().expect("second slot");
        assert!(slots.try_acquire().is_none());
        drop(a);
        assert_eq!(slots.used(), 1);
        assert!(slots.try_acquire().is_some());
    }

    #[test]
    fn with_a_backlog_a_freed_slot_goes_to_the_claimer_not_to_the_next_launch() {
        let slots = Slots::new(1);
        let permit = slots.try_acquire().expect("a slot");
        slots.wake_claimer();
        drop(permit);
        assert!(slots.try_acquire().is_none(), "the launch must not take it");
        let mut reservation = slots.reserve(10);
        assert_eq!(reservation.len(), 1);
        let permit = reservation.take().expect("the handed-off slot");
        assert!(reservation.take().is_none());
        drop(reservation);
        assert_eq!(slots.used(), 1);
        slots.set_backlog(false);
        drop(permit);
        assert_eq!(slots.used(), 0);
    }

    #[tokio::test]
    async fn a_resuming_task_gets_the_next_freed_slot_before_the_claimer_and_launches() {
        let slots = Slots::new(1);
        let permit = slots.try_acquire().expect("a slot");
        slots.wake_claimer();
        let resuming = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await }
        });
        while slots.resuming.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        drop(permit);
        let resumed = resuming.await.expect("the resumer");
        assert_eq!(slots.reserve(10).len(), 0, "the claimer must not get it");
        assert!(slots.try_acquire().is_none(), "nor a launch");
        assert_eq!(slots.used(), 1);
        slots.set_backlog(false);
        drop(resumed);
        assert_eq!(slots.used(), 0);
    }

    #[tokio::test]
    async fn a_slot_handed_to_a_resumer_that_went_away_is_passed_on() {
        let slots = Slots::new(1);
        slots.set_backlog(false);
        let permit = slots.try_acquire().expect("a slot");
        let resuming = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await }
        });
        while slots.resuming.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        resuming.abort();
        let _ = resuming.await;
        drop(permit);
        assert_eq!(slots.used(), 0, "no slot may leak");
        assert!(slots.try_acquire().is_some());
    }

    #[test]
    fn an_unused_reservation_returns_its_slots() {
        let slots = Slots::new(4);
        let reservation = slots.reserve(3);
        assert_eq!(reservation.len(), 3);
        assert_eq!(slots.used(), 3);
        drop(reservation);
        assert_eq!(slots.used(), 0);
    }
}
