-- gridwatch schema, version 3: the quota ledger (CONTRACT.md section 3), the detector's progress
-- read by the status endpoint, and what the HTTP API needs of the registry and rejections.

-- Accepted energy purchases. A purchase's energy is spread evenly over [delivery_start,
-- delivery_end); a licence's bought energy over any period is the sum of those spreads
-- (ledger::bought_energy). `profile` and `cap_wh` record the rules it was checked against.
CREATE TABLE purchases (
    purchase_key    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    licence_key     integer NOT NULL REFERENCES licences (licence_key),
    energy_wh       bigint NOT NULL CHECK (energy_wh > 0),
    delivery_start  timestamptz NOT NULL,
    delivery_end    timestamptz NOT NULL,
    price_kzt       double precision NOT NULL CHECK (price_kzt >= 0),
    profile         text NOT NULL,
    cap_wh          bigint NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('http', 'mqtt')),
    submitted_by    text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (delivery_end > delivery_start)
);
-- The detector asks, per licence and hour, for the purchases overlapping that hour.
CREATE INDEX purchases_licence_delivery_idx
    ON purchases (licence_key, delivery_start) INCLUDE (delivery_end, energy_wh);

-- Every purchase the ledger refused (over the cap, unknown licence, conflicting id, invalid),
-- from either channel: the evidence behind a purchase_over_cap anomaly, and what the status
-- endpoint counts as purchase rejections. Fields are as submitted, so any may be missing.
CREATE TABLE purchase_attempts (
    attempt_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purchase_id     text,
    licence         text,
    energy_wh       bigint,
    delivery_start  timestamptz,
    delivery_end    timestamptz,
    price_kzt       double precision,
    reason          text NOT NULL,
    detail          text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('http', 'mqtt')),
    submitted_by    text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX purchase_attempts_purchase_idx ON purchase_attempts (purchase_id, reason);

-- The detector's event-time progress per region (CONTRACT.md section 5): the status endpoint's
-- watermark is the smallest one. Written by the detector; empty until it runs.
CREATE TABLE detector_progress (
    region_key         integer PRIMARY KEY,
    watermark          timestamptz,
    newest_reading_ts  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The data concentrator a meter reports through (an extension of the registry document).
ALTER TABLE meters ADD COLUMN gateway text;

-- GET /api/v1/rejections pages newest first on (received_at, rejection_id).
CREATE INDEX rejections_newest_idx ON rejections (received_at DESC, rejection_id DESC);
