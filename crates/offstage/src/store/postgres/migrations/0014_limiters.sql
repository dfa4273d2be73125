-- Limiters: named budgets shared by every node on the database (docs/limiters.md).
--
-- A limiter has a token bucket (`rate` tokens a second, at most `burst` saved up), a number of
-- concurrent holders (`max_holders`), or both. The bucket is not ticked: `tokens` is what it
-- held at `refilled_at`, and every acquisition computes the refill since then by the
-- database server's clock (`clock_timestamp()`), so nodes whose clocks disagree still agree.
CREATE TABLE offstage_limiters (
    name         text PRIMARY KEY,
    rate         double precision,
    burst        integer,
    max_holders  integer,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- The holds taken on limiters with `max_holders`: one row per permit held. A hold counts only
-- while its node is registered and it has not expired (`expires_at`, for holds taken over
-- HTTP), so a dead node's holds free themselves; acquisitions delete the ones that no longer
-- count.
CREATE TABLE offstage_limiter_holds (
    id           uuid PRIMARY KEY,
    limiter      text NOT NULL,
    node         uuid NOT NULL,
    holder       text NOT NULL,
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz
);
CREATE INDEX offstage_limiter_holds_by_limiter ON offstage_limiter_holds (limiter, acquired_at);
