-- gridwatch schema, version 2: anomalies (CONTRACT.md section 4) and their tamper-evident
-- history.

-- One row per anomaly: one ongoing condition, growing while it lasts. Identifiers are the
-- contract's text ids (the table holds thousands of rows, not billions, and auditors filter on
-- them). `condition_key` is the detector's name for the condition (kind, subject, start): it makes
-- raising the same condition twice an update, never a duplicate.
CREATE TABLE anomalies (
    anomaly_key    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    condition_key  text NOT NULL UNIQUE,
    kind           text NOT NULL,
    region         text,
    node           text,
    meter          text,
    licence        text,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    detected_at    timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    energy_wh      bigint NOT NULL DEFAULT 0,
    loss_kzt       double precision NOT NULL DEFAULT 0,
    score          double precision NOT NULL DEFAULT 0,
    -- Probability-like weight in [0, 1] of the flag being right: the work queue sorts by
    -- loss_kzt * confidence (expected money at stake).
    confidence     double precision NOT NULL DEFAULT 0.5 CHECK (confidence >= 0 AND confidence <= 1),
    severity       text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    status         text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'investigating', 'confirmed', 'dismissed')),
    suspects       text[] NOT NULL DEFAULT '{}',
    evidence       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX anomalies_newest_idx ON anomalies (detected_at DESC, anomaly_key DESC);
CREATE INDEX anomalies_kind_idx ON anomalies (kind, status);
CREATE INDEX anomalies_region_idx ON anomalies (region);
CREATE INDEX anomalies_node_idx ON anomalies (node) WHERE node IS NOT NULL;
CREATE INDEX anomalies_meter_idx ON anomalies (meter) WHERE meter IS NOT NULL;
CREATE INDEX anomalies_licence_idx ON anomalies (licence) WHERE licence IS NOT NULL;

-- Every creation, update and status transition of an anomaly, chained by hashes: each entry's
-- hash covers its own content and the previous entry's hash, so an entry altered, inserted or
-- removed by direct SQL breaks the chain where `gridwatch audit verify` looks.
CREATE TABLE anomaly_history (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    anomaly_id   text NOT NULL,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL CHECK (action IN ('created', 'updated', 'transition')),
    from_status  text,
    to_status    text,
    note         text,
    snapshot     jsonb NOT NULL,
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX anomaly_history_anomaly_idx ON anomaly_history (anomaly_id, seq);

-- The text an entry's hash covers: a JSON array in a fixed order, times in UTC to the
-- microsecond, so that any client recomputes the same bytes.
CREATE FUNCTION gridwatch_history_payload(
    p_seq bigint, p_anomaly text, p_at timestamptz, p_actor text, p_action text,
    p_from text, p_to text, p_note text, p_snapshot jsonb
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(
        p_seq, p_anomaly,
        to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        p_actor, p_action, p_from, p_to, p_note, p_snapshot)::text
$$;

-- Appends one entry to the chain. Serialised by an advisory lock so that concurrent writers
-- chain one after the other; the sequence number is drawn first because the hash covers it.
CREATE FUNCTION gridwatch_record_history(
    p_anomaly text, p_actor text, p_action text, p_from text, p_to text, p_note text,
    p_snapshot jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_previous  bytea;
    v_seq       bigint;
    v_at        timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(7423002);
    SELECT h.hash INTO v_previous FROM anomaly_history h ORDER BY h.seq DESC LIMIT 1;
    v_previous := coalesce(v_previous, sha256(convert_to('gridwatch anomaly history', 'UTF8')));
    v_seq := nextval(pg_get_serial_sequence('anomaly_history', 'seq'));
    INSERT INTO anomaly_history
        (seq, anomaly_id, at, actor, action, from_status, to_status, note, snapshot, prev_hash, hash)
    OVERRIDING SYSTEM VALUE
    VALUES (v_seq, p_anomaly, v_at, p_actor, p_action, p_from, p_to, p_note, p_snapshot, v_previous,
            sha256(v_previous || convert_to(gridwatch_history_payload(
                v_seq, p_anomaly, v_at, p_actor, p_action, p_from, p_to, p_note, p_snapshot), 'UTF8')));
    RETURN v_seq;
END $$;

-- History is append-only: the API and detector roles are refused UPDATE and DELETE by their
-- grants (deploy: least-privilege roles), and this trigger refuses them to any role that was
-- granted more than it should be. (A superuser can still disable it: that is what the hash chain
-- and `gridwatch audit verify` are for.)
CREATE FUNCTION gridwatch_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'anomaly_history is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER anomaly_history_append_only BEFORE UPDATE OR DELETE ON anomaly_history
    FOR EACH ROW EXECUTE FUNCTION gridwatch_history_append_only();
CREATE TRIGGER anomaly_history_no_truncate BEFORE TRUNCATE ON anomaly_history
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_history_append_only();
