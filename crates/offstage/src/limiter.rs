//! The **limiter**: a named budget for calls to something rate-limited (Stripe, Shopify, an LLM
//! provider), kept in the store and shared by every node on it. The concept and an example are
//! on [`Limiter`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{Error, ErrorKind};
use crate::id::NodeId;
use crate::runtime::Inner;

/// The most tokens per second a limiter may add.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;

/// The largest burst and the most concurrent holders a limiter takes: beyond them it limits
/// nothing a store could count, and the HTTP document can say the bound.
pub(crate) const MAX_COUNT: u32 = 1_000_000;

/// What a limiter allows: a token bucket (`rate` tokens a second, at most `burst` saved up),
/// a number of concurrent holders (`max_holders`), or both. Each acquisition takes one token
/// and, with `max_holders`, one hold until its permit is dropped.
///
/// ```
/// use offstage::Limit;
///
/// // 25 calls a second, 5 of them at once at most after a quiet spell.
/// let stripe = Limit::per_second(25.0).burst(5);
/// // At most 4 requests in flight, whatever their rate.
/// let llm = Limit::holders(4);
/// // Both.
/// let shopify = Limit::per_second(2.0).burst(40).max_holders(10);
/// # let _ = (stripe, llm, shopify);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limit {
    /// Tokens added per second (fractions allowed: `0.5` is one every two seconds); `None`:
    /// no token bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The most tokens the bucket holds, so the most acquisitions in a row after a quiet
    /// spell; 1 when `rate` is set and this is not. A new bucket starts full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// The most permits held at once on all nodes together; `None`: no such limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_holders: Option<u32>,
}

impl Limit {
    /// A token bucket adding `rate` tokens a second, with a burst of 1 (set it with
    /// [`Limit::burst`]).
    pub fn per_second(rate: f64) -> Self {
        Self {
            rate: Some(rate),
            burst: None,
            max_holders: None,
        }
    }

    /// At most `max` permits held at once, with no token bucket.
    pub fn holders(max: u32) -> Self {
        Self {
            rate: None,
            burst: None,
            max_holders: Some(max),
        }
    }

    /// The same limit with a burst of `burst` tokens.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The same limit with at most `max` permits held at once.
    pub fn max_holders(mut self, max: u32) -> Self {
        self.max_holders = Some(max);
        self
    }

    /// The burst in effect: `burst`, or 1 for a bucket without one.
    pub fn effective_burst(&self) -> Option<u32> {
        self.rate.map(|_| self.burst.unwrap_or(1))
    }

    /// Checks the limit for limiter `name`: a rate above 0 and at most 1,000,000 a second, a burst
    /// and a number of holders of at least 1, a burst only with a rate, and at least one of
    /// a rate and a number of holders.
    pub fn check(&self, name: &str) -> Result<(), Error> {
        let bad = |why: String| {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("limiter `{name}`: {why}"),
            ))
        };
        match self.rate {
            Some(rate) if !(rate > 0.0 && rate <= MAX_RATE) => {
                return bad(format!(
                    "a rate of {rate} tokens a second is out of range: use more than 0 and at \
                     most {MAX_RATE} (fractions allowed: 0.5 is one every two seconds)"
                ))
            }
            None if self.burst.is_some() => {
                return bad(
                    "a burst without a rate means nothing: add a rate (tokens a second), or \
                     drop the burst"
                        .to_owned(),
                )
            }
            None if self.max_holders.is_none() => {
                return bad(
                    "it limits nothing: give it a rate (tokens a second, with a burst), a \
                     number of concurrent holders, or both"
                        .to_owned(),
                )
            }
            _ => {}
        }
        if self.burst == Some(0) {
            return bad("a burst of 0 would never let anyone through: use at least 1".to_owned());
        }
        if self.max_holders == Some(0) {
            return bad(
                "0 concurrent holders would never let anyone through: use at least 1".to_owned(),
            );
        }
        for (what, value) in [("burst", self.burst), ("max_holders", self.max_holders)] {
            if value.is_some_and(|n| n > MAX_COUNT) {
                return bad(format!(
                    "a {what} of {} is out of range: use at most {MAX_COUNT}",
                    value.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let (Some(rate), Some(burst)) = (self.rate, self.effective_burst()) {
            parts.push(format!("{rate}/s, burst {burst}"));
        }
        if let Some(max) = self.max_holders {
            parts.push(format!("at most {max} held at once"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A limiter as the store keeps it, read at some moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimiterRecord {
    /// The limiter's name.
    pub name: String,
    /// What it allows.
    #[serde(flatten)]
    pub limit: Limit,
    /// The tokens in its bucket at the moment of the read (refilled up to then), `None`
    /// without a bucket. Fractions are a token on its way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<f64>,
    /// The permits held now, oldest first: only those of live nodes, not expired.
    pub holders: Vec<LimiterHold>,
    /// When it was last defined.
    pub updated_at: DateTime<Utc>,
}

/// A permit held on a limiter with `max_holders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimiterHold {
    /// The hold's id: what releases it.
    pub id: Uuid,
    /// The node it was taken through; it is freed when that node dies.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub node: NodeId,
    /// Who holds it, for people: `task <id> (<name>)`, `node <id>`, or what the caller said.
    pub holder: String,
    /// Since when.
    pub acquired_at: DateTime<Utc>,
    /// When it is freed if nobody releases it first (holds taken over HTTP); `None`: held
    /// until released, or until its node dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A hold to take with an acquisition ([`crate::store::Store::limiter_acquire`]), for limiters
/// with `max_holders` (ignored by the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRequest {
    /// The hold's id, chosen by the caller.
    pub id: Uuid,
    /// The node it is taken through: it must be registered, and the hold is freed when the
    /// node is no longer.
    pub node: NodeId,
    /// Who holds it, for people.
    pub holder: String,
    /// Freed this long after it is taken if nobody releases it first; `None`: never.
    pub ttl: Option<Duration>,
}

/// What one try at a limiter found ([`crate::store::Store::limiter_acquire`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// A token was taken, and a hold if the limiter has `max_holders` (`held` says so).
    Taken {
        /// True when the hold asked for was taken (the limiter has `max_holders`).
        held: bool,
    },
    /// The bucket has no whole token: the next is due this long from now. Nothing was taken.
    NoToken(Duration),
    /// Every hold is taken: a release (or a holder's node dying, or a hold expiring) makes
    /// room. Nothing was taken.
    Full,
}

/// The token bucket's rule, the same in every backend: `tokens` at `refilled_at`, refilled at
/// `rate` a second up to `burst`, computed on demand from the time; nothing ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) rate: f64,
    pub(crate) burst: f64,
    pub(crate) tokens: f64,
    pub(crate) refilled_at: DateTime<Utc>,
}

impl Bucket {
    /// The tokens at `now`. A `now` before `refilled_at` (another writer's clock ran ahead,
    /// or a transaction began before the one that refilled last) adds nothing.
    pub(crate) fn level(&self, now: DateTime<Utc>) -> f64 {
        let elapsed = (now - self.refilled_at)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        let added = self.rate * (elapsed.max(0) as f64 / 1e6);
        (self.tokens + added).min(self.burst)
    }

    /// Takes one token at `now` (the bucket then holds what is left, as of the later of
    /// `now` and `refilled_at`), or says how long until the next whole one is due.
    pub(crate) fn take(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        let level = self.level(now);
        if level >= 1.0 {
            self.tokens = level - 1.0;
            self.refilled_at = self.refilled_at.max(now);
            Ok(())
        } else {
            // Rounded up to the microsecond, so a waiter that sleeps this long finds it.
            let micros = ((1.0 - level) / self.rate * 1e6).ceil();
            Err(Duration::from_micros(micros.clamp(1.0, 1e15) as u64))
        }
    }
}

/// Checks a limiter name: not empty, at most [`crate::limits::MAX_NAME_CHARS`] characters, no
/// control characters.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a limiter needs a name: use a short one such as `stripe`",
        ));
    }
    crate::limits::check_text("limiter name", name, crate::limits::MAX_NAME_CHARS)
}

/// The error for a limiter nobody defined.
pub(crate) fn unknown(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "no limiter is named `{name}`: define it with RuntimeBuilder::limiter(\"{name}\", \
             Limit::per_second(..)), Runtime::put_limiter, PUT /api/limiters/{name} or \
             `offstage limiter set {name} --rate N`"
        ),
    )
}

/// **Limiter**: a named budget for calls to something rate-limited, shared by every node on
/// the store, by tasks and request handlers alike.
///
/// A limiter has a token bucket (a rate a second and a burst), a number of concurrent
/// holders, or both ([`Limit`]). [`Limiter::acquire`] waits until it may go and returns a
/// [`LimiterPermit`]: it took one token, and one hold, given back when the permit is dropped.
/// The budget lives in the store, so a task on one node and a handler on another draw on the
/// same one. The bucket is refilled on demand from the stored time of its last refill, by
/// the clock of the store (the database server's on PostgreSQL, so nodes whose clocks
/// disagree still agree on the budget). A hold is tied to its node: when the node dies, its
/// holds are freed.
///
/// A waiter that finds no token sleeps until the next one is due; one that finds every hold
/// taken waits for a release, which wakes it from any node. Waiters on one node take turns,
/// first come first served.
///
/// ```no_run
/// use offstage::{Context, TaskError};
///
/// async fn charge(ctx: Context, customer: String) -> Result<(), TaskError> {
///     let _permit = ctx.limiter("stripe")?.acquire().await?; // waits its turn
///     // ... call the API; a 429 says to come back later:
///     # let too_many = false;
///     if too_many {
///         return Err(ctx.back_off(std::time::Duration::from_secs(30)));
///     }
///     Ok(())
/// }
/// ```
///
/// Get one with [`crate::Runtime::limiter`] or, inside a task, [`crate::Context::limiter`].
/// Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    rt: Arc<Inner>,
    name: Arc<str>,
    holder: Arc<str>,
    /// The task's cancellation, for a limiter a task got: a wait ends when the task is asked
    /// to stop.
    cancel: Option<CancellationToken>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish()
    }
}

impl Limiter {
    pub(crate) fn new(
        rt: Arc<Inner>,
        name: &str,
        holder: String,
        cancel: Option<CancellationToken>,
    ) -> Result<Self, Error> {
        check_name(name)?;
        Ok(Self {
            rt,
            name: name.into(),
            holder: holder.into(),
            cancel,
        })
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same handle, naming its holds' holder `who` (what [`LimiterHold::holder`] shows)
    /// instead of the default (the task, or the node).
    pub fn holder(mut self, who: impl Into<String>) -> Self {
        self.holder = who.into().into();
        self
    }

    /// The limiter as the store has it now, or `None` if nobody defined it.
    pub async fn record(&self) -> Result<Option<LimiterRecord>, Error> {
        crate::runtime::limiters::get(&self.rt, &self.name).await
    }

    /// Waits until the limiter lets this caller go, and returns its permit: one token taken,
    /// and one hold for a limiter with `max_holders`, given back when the permit is dropped.
    ///
    /// Errors: [`ErrorKind::NotFound`] when no limiter has this name (the message says how to
    /// define one); [`ErrorKind::Cancelled`] when the task that waits is asked to stop (return
    /// it); store errors.
    pub async fn acquire(&self) -> Result<LimiterPermit, Error> {
        match self.wait(None).await? {
            Some(permit) => Ok(permit),
            None => unreachable!("a wait with no deadline ends with a permit or an error"),
        }
    }

    /// [`Limiter::acquire`], giving up after `limit`: `None` if it could not go by then.
    pub async fn acquire_timeout(&self, limit: Duration) -> Result<Option<LimiterPermit>, Error> {
        self.wait(Some(tokio::time::Instant::now() + limit)).await
    }

    /// A permit if the limiter lets this caller go at once, `None` otherwise (no token, every
    /// hold taken, or other callers on this node waiting ahead). Never waits for the limiter.
    pub async fn try_acquire(&self) -> Result<Option<LimiterPermit>, Error> {
        let held = crate::runtime::limiters::acquire(
            &self.rt,
            &self.name,
            &self.holder,
            None,
            crate::runtime::limiters::Wait::Not,
        )
        .await?;
        Ok(held.map(|hold| LimiterPermit::new(self, hold)))
    }

    async fn wait(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<LimiterPermit>, Error> {
        let wait = match deadline {
            Some(at) => crate::runtime::limiters::Wait::Until(at),
            None => crate::runtime::limiters::Wait::Forever,
        };
        let acquire =
            crate::runtime::limiters::acquire(&self.rt, &self.name, &self.holder, None, wait);
        let held = match &self.cancel {
            Some(cancel) => tokio::select! {
                held = acquire => held?,
                () = cancel.cancelled() => {
                    return Err(Error::new(
                        ErrorKind::Cancelled,
                        format!(
                            "the task was asked to stop while it waited for limiter `{}`: \
                             return this error",
                            self.name
                        ),
                    ))
                }
            },
            None => acquire.await?,
        };
        Ok(held.map(|hold| LimiterPermit::new(self, hold)))
    }
}

/// The right to go that [`Limiter::acquire`] gave: one token (spent) and, for a limiter with
/// `max_holders`, one hold, given back when the permit is dropped (or by
/// [`LimiterPermit::release`], which waits for the store).
pub struct LimiterPermit {
    rt: Arc<Inner>,
    name: Arc<str>,
    hold: Option<Uuid>,
}

impl fmt::Debug for LimiterPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterPermit")
            .field("name", &self.name)
            .field("hold", &self.hold)
            .finish()
    }
}

impl LimiterPermit {
    fn new(limiter: &Limiter, hold: Option<Uuid>) -> Self {
        Self {
            rt: Arc::clone(&limiter.rt),
            name: Arc::clone(&limiter.name),
            hold,
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hold's id, for a limiter with `max_holders`.
    pub fn hold(&self) -> Option<Uuid> {
        self.hold
    }

    /// Gives the hold back now and waits for the store to have it. Releasing a hold that was
    /// freed meanwhile (its node was declared dead) does nothing.
    pub async fn release(mut self) -> Result<(), Error> {
        match self.hold.take() {
            Some(hold) => crate::runtime::limiters::release(&self.rt, &self.name, hold)
                .await
                .map(|_| ()),
            None => Ok(()),
        }
    }
}

impl Drop for LimiterPermit {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            crate::runtime::limiters::release_later(&self.rt, &self.name, hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_700_000_000_000_000 + micros).unwrap()
    }

    #[test]
    fn a_bucket_refills_from_the_time_and_never_past_its_burst() {
        let mut bucket = Bucket {
            rate: 10.0,
            burst: 3.0,
            tokens: 3.0,
            refilled_at: at(0),
        };
        for _ in 0..3 {
            bucket.take(at(0)).unwrap();
        }
        // One token every 100 ms.
        assert_eq!(bucket.take(at(0)), Err(Duration::from_millis(100)));
        assert_eq!(bucket.take(at(40_000)), Err(Duration::from_millis(60)));
        bucket.take(at(100_000)).unwrap();
        // An hour later it holds its burst, not 36,000 tokens.
        assert_eq!(bucket.level(at(3_600_000_000)), 3.0);
        // A clock behind the last refill adds nothing, and takes nothing back.
        assert_eq!(bucket.level(at(50_000)), 0.0);
    }

    #[test]
    fn every_bad_limit_says_how_to_fix_it() {
        for (limit, says) in [
            (Limit::per_second(0.0), "out of range"),
            (Limit::per_second(f64::NAN), "out of range"),
            (Limit::per_second(2e6), "out of range"),
            (Limit::per_second(1.0).burst(0), "at least 1"),
            (Limit::holders(0), "at least 1"),
            (Limit::default(), "limits nothing"),
            (
                Limit {
                    burst: Some(3),
                    ..Limit::holders(2)
                },
                "without a rate",
            ),
        ] {
            let error = limit.check("stripe").unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument);
            assert!(error.message().contains(says), "{limit:?}: {error}");
        }
        Limit::per_second(0.5)
            .burst(2)
            .max_holders(3)
            .check("ok")
            .unwrap();
    }
}
