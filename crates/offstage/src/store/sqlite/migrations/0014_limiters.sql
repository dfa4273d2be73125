-- Limiters: named budgets shared by every node on the database (docs/limiters.md).
--
-- A limiter has a token bucket (`rate` tokens a second, at most `burst` saved up), a number of
-- concurrent holders (`max_holders`), or both. The bucket is not ticked: `tokens` is what it
-- held at `refilled_at`, and every acquisition computes the refill since then. Times are
-- microseconds since the Unix epoch.
CREATE TABLE offstage_limiters (
    name         TEXT PRIMARY KEY,
    rate         REAL,
    burst        INTEGER,
    max_holders  INTEGER,
    tokens       REAL NOT NULL,
    refilled_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- The holds taken on limiters with `max_holders`: one row per permit held. A hold counts only
-- while its node is registered and it has not expired (`expires_at`, for holds taken over
-- HTTP), so a dead node's holds free themselves; acquisitions delete the ones that no longer
-- count. `id` and `node` are 16 UUID bytes.
CREATE TABLE offstage_limiter_holds (
    id           BLOB PRIMARY KEY,
    limiter      TEXT NOT NULL,
    node         BLOB NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  INTEGER NOT NULL,
    expires_at   INTEGER
);
CREATE INDEX offstage_limiter_holds_by_limiter ON offstage_limiter_holds (limiter, acquired_at);
