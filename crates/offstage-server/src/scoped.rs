//! Scoped tokens: what a web app hands its own user's browser.
//!
//! A scoped token names one **scope**, one task or one owner (every task launched with that
//! `owner`), the **rights** it carries there (`read`: state, logs, events, signals, result;
//! and optionally `kill` and `signal`), and when it **expires**. It is signed with the server's secret
//! (HMAC-SHA256), so any node that has the secret checks it without a store lookup, and nobody
//! without the secret can make or change one. Everything else the API offers (launch, purge,
//! schedules, other owners' tasks) stays out of its reach. `docs/end-users.md` has the model and
//! its threat model.
//!
//! The text of a token is `ost1.<payload>.<mac>`: the payload is JSON
//! (`{"scope": {"owner": "u1"}, "rights": ["read", "kill"], "exp": 1767225600}`, `exp` in Unix
//! seconds) and both parts are base64url without padding; the MAC is HMAC-SHA256 of
//! `ost1.<payload>` under the secret.
//!
//! An app that mounts the router mints tokens in Rust with the same secret it gives the
//! router:
//!
//! ```
//! use std::time::Duration;
//! use offstage_server::{Rights, Scope, ScopedTokens};
//!
//! # async fn demo(runtime: offstage::Runtime) {
//! let secret = std::env::var("APP_TOKEN_SECRET").unwrap_or_else(|_| "x".repeat(32));
//! let tokens = ScopedTokens::new(secret.as_bytes());
//! let state = offstage_server::AppState::new(runtime).scoped_tokens(tokens.clone());
//! let router = offstage_server::app_at("/offstage", state);
//! // In a request handler, for the signed-in user `u1`:
//! let minted = tokens.mint(Scope::Owner("u1".into()), Rights::READ_AND_KILL, Duration::from_secs(900));
//! assert!(minted.token.starts_with("ost1."));
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use offstage::TaskId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The prefix every scoped token starts with: the format's version.
pub const PREFIX: &str = "ost1.";

/// The fewest bytes a secret may have: as many as the MAC's output.
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest a token minted over HTTP may live (`ttl_s`): 7 days. A scoped token cannot be
/// revoked short of changing the secret, so its life is kept short.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Which tasks a scoped token reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This one task.
    Task(TaskId),
    /// Every task launched with this `owner`, those launched after the token too.
    Owner(String),
}

impl Scope {
    /// True when the task `id`, owned by `owner`, is in this scope.
    pub fn contains(&self, id: TaskId, owner: Option<&str>) -> bool {
        match self {
            Scope::Task(task) => *task == id,
            Scope::Owner(name) => owner == Some(name.as_str()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Task(id) => write!(f, "task {id}"),
            Scope::Owner(owner) => write!(f, "owner `{owner}`"),
        }
    }
}

/// What a scoped token may do within its scope: always read, and optionally kill and send
/// signals. A set of rights; on the wire a list of names, `["read"]`, `["read", "kill"]`,
/// `["read", "signal"]`, `["read", "kill", "signal"]`.
///
/// ```
/// use offstage_server::Rights;
///
/// let approver = Rights::READ.with_signal(); // sees its tasks, and approves them
/// assert_eq!(approver.names(), ["read", "signal"]);
/// assert!(approver.can_signal() && !approver.can_kill());
/// assert_eq!(Rights::from_names(&["read", "kill"]), Ok(Rights::READ_AND_KILL));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rights {
    kill: bool,
    signal: bool,
}

impl Rights {
    /// Read the tasks: list them, their state, logs, events, signals and results.
    pub const READ: Rights = Rights {
        kill: false,
        signal: false,
    };
    /// Read, and kill them (a Stop button).
    pub const READ_AND_KILL: Rights = Rights {
        kill: true,
        signal: false,
    };

    /// These rights and `kill`.
    pub const fn with_kill(self) -> Self {
        Self { kill: true, ..self }
    }

    /// These rights and `signal`: send signals to the tasks (an Approve button).
    pub const fn with_signal(self) -> Self {
        Self {
            signal: true,
            ..self
        }
    }

    /// True when the token may kill tasks in its scope.
    pub fn can_kill(self) -> bool {
        self.kill
    }

    /// True when the token may send signals to tasks in its scope.
    pub fn can_signal(self) -> bool {
        self.signal
    }

    /// The rights as the wire says them, `read` first: `["read"]`, `["read", "kill"]`,
    /// `["read", "signal"]` or `["read", "kill", "signal"]`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = vec!["read"];
        if self.kill {
            names.push("kill");
        }
        if self.signal {
            names.push("signal");
        }
        names
    }

    /// Reads a list of rights (`read`, and optionally `kill` and `signal`, in any order). The
    /// error says what is accepted.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        const ACCEPTED: &str = "give [\"read\"], optionally with \"kill\" and \"signal\"";
        let (mut read, mut rights) = (false, Rights::READ);
        for name in names {
            match name.as_ref() {
                "read" => read = true,
                "kill" => rights.kill = true,
                "signal" => rights.signal = true,
                other => return Err(format!("`{other}` is not a right: {ACCEPTED}")),
            }
        }
        match (read, rights) {
            (true, rights) => Ok(rights),
            (false, Rights::READ) => Err(format!("no rights given: {ACCEPTED}")),
            (false, _) => Err(format!(
                "kill and signal need read too (a Stop or Approve button shows the task it \
                 acts on): give {:?}",
                rights.names()
            )),
        }
    }
}

/// A token [`ScopedTokens::mint`] made, and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Minted {
    /// The token (`ost1.…`), for `Authorization: Bearer` or, on the event streams, `?token=`.
    pub token: String,
    /// When it stops working (whole seconds).
    pub expires_at: DateTime<Utc>,
}

/// What a valid scoped token allows: its scope, rights and expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The tasks it reaches.
    pub scope: Scope,
    /// What it may do to them.
    pub rights: Rights,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl Grant {
    /// Says what the token allows, for refusals: "this token is scoped to owner `u1` with
    /// rights read, kill: it can read and kill that owner's tasks, nothing else".
    pub fn describe(&self) -> String {
        let verbs = match (self.rights.can_kill(), self.rights.can_signal()) {
            (false, false) => "read",
            (true, false) => "read and kill",
            (false, true) => "read and signal",
            (true, true) => "read, kill and signal",
        };
        let what = match &self.scope {
            Scope::Task(_) => "that task",
            Scope::Owner(_) => "that owner's tasks",
        };
        format!(
            "this token is scoped to {} with rights {}: it can {verbs} {what}, nothing else",
            self.scope,
            self.rights.names().join(", ")
        )
    }
}

/// Why a presented scoped token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Well made and signed, but past its `exp`.
    Expired(DateTime<Utc>),
    /// Not a token this server's secret signed: malformed, changed, or minted with another
    /// secret (another server's, or this one's before a restart).
    Invalid,
}

/// The payload, as signed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    scope: Scope,
    rights: Vec<String>,
    exp: i64,
}

/// Mints and checks scoped tokens with one secret.
///
/// Every node that checks a token must have the secret that minted it: nodes sharing a
/// database share the secret (`offstage serve --token-secret-file`, `OFFSTAGE_TOKEN_SECRET`).
/// Changing the secret invalidates every token minted with the old one; that is how to revoke
/// them all. The secret is never printed, `Debug` included.
#[derive(Clone)]
pub struct ScopedTokens {
    /// The HMAC key, ready to clone per token: the secret is read once.
    key: Arc<Hmac<Sha256>>,
    /// True for [`ScopedTokens::random`]: the tokens outlive no restart.
    ephemeral: bool,
}

impl fmt::Debug for ScopedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedTokens")
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

impl ScopedTokens {
    /// Tokens signed with `secret`, which must be at least [`MIN_SECRET_BYTES`] long.
    ///
    /// # Panics
    ///
    /// If `secret` is shorter (the message says how long it must be); [`ScopedTokens::try_new`]
    /// returns the error instead.
    pub fn new(secret: &[u8]) -> Self {
        Self::try_new(secret).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Tokens signed with `secret`, or why it cannot be one (too short).
    pub fn try_new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the scoped-token secret is {} bytes long: give at least {MIN_SECRET_BYTES} \
                 random bytes (for example the output of `openssl rand -base64 48`)",
                secret.len()
            ));
        }
        Ok(Self::with_key(secret, false))
    }

    /// Tokens signed with a secret made up now, at random: they are valid on this process only,
    /// until it stops. What a server gets when it is given no secret.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system gives random bytes");
        Self::with_key(&secret, true)
    }

    fn with_key(secret: &[u8], ephemeral: bool) -> Self {
        let key = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        Self {
            key: Arc::new(key),
            ephemeral,
        }
    }

    /// True when the secret was made up by [`ScopedTokens::random`].
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// A token for `scope` with `rights`, valid for `ttl` from now (rounded up to a whole
    /// second).
    pub fn mint(&self, scope: Scope, rights: Rights, ttl: Duration) -> Minted {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let at = Utc::now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.mint_until(scope, rights, at)
    }

    /// A token for `scope` with `rights`, valid until `expires_at` (rounded up to a whole
    /// second). A time in the past makes a token that is already expired.
    pub fn mint_until(&self, scope: Scope, rights: Rights, expires_at: DateTime<Utc>) -> Minted {
        let mut exp = expires_at.timestamp();
        if expires_at.timestamp_subsec_nanos() > 0 {
            exp = exp.saturating_add(1);
        }
        let claims = Claims {
            scope,
            rights: rights.names().iter().map(|r| (*r).to_owned()).collect(),
            exp,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(payload));
        let mac = self.mac(&signed).finalize().into_bytes();
        Minted {
            token: format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac)),
            expires_at: Utc
                .timestamp_opt(exp, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// What `token` allows, checked against the secret (in constant time) and the clock.
    pub fn verify(&self, token: &str) -> Result<Grant, Refused> {
        let (signed, mac) = token.rsplit_once('.').ok_or(Refused::Invalid)?;
        let payload = signed.strip_prefix(PREFIX).ok_or(Refused::Invalid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Refused::Invalid)?;
        self.mac(signed)
            .verify_slice(&mac)
            .map_err(|_| Refused::Invalid)?;
        // Signed by us: what follows only fails for a token another version of Offstage made.
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Refused::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Refused::Invalid)?;
        let rights = Rights::from_names(&claims.rights).map_err(|_| Refused::Invalid)?;
        let expires_at = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .ok_or(Refused::Invalid)?;
        if Utc::now() >= expires_at {
            return Err(Refused::Expired(expires_at));
        }
        Ok(Grant {
            scope: claims.scope,
            rights,
            expires_at,
        })
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = (*self.key).clone();
        mac.update(signed.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_and_a_changed_one_does_not() {
        let tokens = ScopedTokens::new(SECRET);
        let minted = tokens.mint(
            Scope::Owner("u1".into()),
            Rights::READ_AND_KILL,
            Duration::from_secs(60),
        );
        let grant = tokens.verify(&minted.token).unwrap();
        assert_eq!(grant.scope, Scope::Owner("u1".into()));
        assert_eq!(grant.rights, Rights::READ_AND_KILL);
        assert_eq!(grant.expires_at, minted.expires_at);

        // Another owner's payload under the same MAC.
        let (_, mac) = minted.token.rsplit_once('.').unwrap();
        let other = tokens.mint(
            Scope::Owner("u2".into()),
            Rights::READ_AND_KILL,
            Duration::from_secs(60),
        );
        let (other_signed, _) = other.token.rsplit_once('.').unwrap();
        assert_eq!(
            tokens.verify(&format!("{other_signed}.{mac}")),
            Err(Refused::Invalid)
        );
        // Another secret.
        let elsewhere = ScopedTokens::new(b"another secret, also 32 bytes long");
        assert_eq!(elsewhere.verify(&minted.token), Err(Refused::Invalid));
        for junk in ["", "ost1.", "ost1..", "ost1.e30.AAAA", "Bearer"] {
            assert_eq!(tokens.verify(junk), Err(Refused::Invalid), "{junk}");
        }
    }

    #[test]
    fn a_token_past_its_time_is_expired() {
        let tokens = ScopedTokens::new(SECRET);
        let past = Utc::now() - chrono::Duration::seconds(5);
        let minted = tokens.mint_until(Scope::Owner("u1".into()), Rights::READ, past);
        assert!(matches!(
            tokens.verify(&minted.token),
            Err(Refused::Expired(_))
        ));
    }

    #[test]
    fn short_secrets_and_odd_rights_are_refused() {
        let error = ScopedTokens::try_new(b"short").unwrap_err();
        assert!(error.contains("at least 32"), "{error}");
        assert_eq!(
            Rights::from_names(&["kill", "read"]),
            Ok(Rights::READ_AND_KILL)
        );
        assert!(Rights::from_names(&["kill"])
            .unwrap_err()
            .contains("need read"));
        assert!(Rights::from_names(&["signal"])
            .unwrap_err()
            .contains("need read"));
        assert_eq!(
            Rights::from_names(&["signal", "read", "kill"]),
            Ok(Rights::READ.with_kill().with_signal())
        );
        assert!(Rights::from_names(&["read", "launch"])
            .unwrap_err()
            .contains("not a right"));
        assert!(Rights::from_names::<&str>(&[]).is_err());
    }
}
