-- gridwatch schema, version 1: the registry, readings, rejections and ingest bookkeeping.
--
-- Sized for national scale (576 M readings a day): readings are narrow rows keyed by an integer
-- meter key, partitioned by day on event time; text identifiers live only in the registry.

-- The registry of CONTRACT.md section 1. Text ids are the contract's; integer keys are what
-- every large table stores.
CREATE TABLE regions (
    region_key          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  text NOT NULL UNIQUE,
    name                text NOT NULL,
    tariff_kzt_per_kwh  double precision NOT NULL CHECK (tariff_kzt_per_kwh >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE licences (
    licence_key          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                   text NOT NULL UNIQUE,
    holder               text NOT NULL,
    pool                 text,
    registered_machines  integer NOT NULL CHECK (registered_machines >= 0),
    machine_rated_w      integer NOT NULL CHECK (machine_rated_w >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    node_key         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    parent_key       integer REFERENCES nodes (node_key),
    region_key       integer NOT NULL REFERENCES regions (region_key),
    kind             text NOT NULL,
    input_meter_key  integer,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_parent_idx ON nodes (parent_key);

CREATE TABLE meters (
    meter_key     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    node_key      integer NOT NULL REFERENCES nodes (node_key),
    role          text NOT NULL CHECK (role IN ('input', 'consumer')),
    class         text NOT NULL CHECK (class IN ('boundary', 'household', 'commercial', 'industrial', 'mining')),
    accuracy_pct  double precision NOT NULL CHECK (accuracy_pct > 0 AND accuracy_pct <= 20),
    licence_key   integer REFERENCES licences (licence_key),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meters_node_idx ON meters (node_key);
CREATE INDEX meters_licence_idx ON meters (licence_key) WHERE licence_key IS NOT NULL;

ALTER TABLE nodes ADD CONSTRAINT nodes_input_meter_fk
    FOREIGN KEY (input_meter_key) REFERENCES meters (meter_key) DEFERRABLE INITIALLY DEFERRED;

-- What changed in the registry and when: a meter moved, was replaced, got a licence.
CREATE TABLE registry_changes (
    change_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text NOT NULL,
    entity      text NOT NULL,      -- region, node, meter, licence
    entity_id   text NOT NULL,
    action      text NOT NULL,      -- created, updated
    before      jsonb,
    after       jsonb NOT NULL
);
CREATE INDEX registry_changes_entity_idx ON registry_changes (entity, entity_id, change_id);

-- One row; `version` grows with every registry change so that ingest and the detector reload
-- their caches (a NOTIFY on channel gridwatch_registry tells them at once).
CREATE TABLE registry_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);
INSERT INTO registry_state VALUES (true, 0, now());

CREATE FUNCTION gridwatch_registry_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_state SET version = version + 1, updated_at = now();
    PERFORM pg_notify('gridwatch_registry', '');
    RETURN NULL;
END $$;

CREATE TRIGGER regions_bump AFTER INSERT OR UPDATE OR DELETE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_registry_bump();
CREATE TRIGGER nodes_bump AFTER INSERT OR UPDATE OR DELETE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_registry_bump();
CREATE TRIGGER meters_bump AFTER INSERT OR UPDATE OR DELETE ON meters
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_registry_bump();
CREATE TRIGGER licences_bump AFTER INSERT OR UPDATE OR DELETE ON licences
    FOR EACH STATEMENT EXECUTE FUNCTION gridwatch_registry_bump();

-- Readings: 24 bytes of data a row (column order avoids alignment padding), one partition per
-- UTC day, created ahead by gridwatch_ensure_reading_partitions. No foreign key: ingest only
-- writes meters it found in the registry, and a per-row check would cost at 6,700 rows/s.
CREATE TABLE readings (
    ts         timestamptz NOT NULL,
    energy_wh  bigint NOT NULL,
    meter_key  integer NOT NULL,
    power_w    real,
    PRIMARY KEY (meter_key, ts)
) PARTITION BY RANGE (ts);

-- Creates the daily partitions covering [p_from, p_to); returns how many it created.
-- Serialised by an advisory lock so that concurrent ingest instances never race.
CREATE FUNCTION gridwatch_ensure_reading_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day      date := (p_from AT TIME ZONE 'UTC')::date;
    last_day date := (p_to AT TIME ZONE 'UTC')::date;
    name     text;
    created  integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7423001);
    WHILE day <= last_day LOOP
        name := format('readings_p%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                name,
                (day::timestamp AT TIME ZONE 'UTC'),
                ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END $$;

-- Whatever cannot be stored as a reading. The raw payload is kept up to 64 KiB (raw_size says
-- how large it was); rejection_counts counts everything, including what the flood limit did not
-- keep row by row.
CREATE TABLE rejections (
    rejection_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    topic         text NOT NULL,
    source        text NOT NULL,
    meter_id      text,
    reading_ts    timestamptz,
    reason        text NOT NULL,
    detail        text NOT NULL,
    raw           bytea NOT NULL,
    raw_size      integer NOT NULL
);
CREATE INDEX rejections_received_idx ON rejections (received_at);
CREATE INDEX rejections_reason_idx ON rejections (reason, rejection_id);
CREATE INDEX rejections_meter_idx ON rejections (meter_id, rejection_id) WHERE meter_id IS NOT NULL;

CREATE TABLE rejection_counts (
    source    text NOT NULL,
    reason    text NOT NULL,
    hour      timestamptz NOT NULL,
    rejected  bigint NOT NULL,
    kept      bigint NOT NULL,
    PRIMARY KEY (source, reason, hour)
);

-- Running totals per ingest writer (one row each, so writers never contend), summed by the
-- status endpoint instead of counting billions of rows.
CREATE TABLE ingest_counters (
    writer            text PRIMARY KEY,
    readings_stored   bigint NOT NULL DEFAULT 0,
    rejections        bigint NOT NULL DEFAULT 0,
    newest_reading_ts timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Which minutes of event time each committed batch touched, per region: the detector's work
-- queue. Written in the batch's transaction, consumed (deleted) by the detector in its own, so
-- no committed batch is ever missed, whatever the commit order of concurrent writers.
CREATE TABLE reading_touches (
    region_key    integer NOT NULL,
    minute        timestamptz NOT NULL,
    readings      integer NOT NULL,
    newest_ts     timestamptz NOT NULL
);
CREATE INDEX reading_touches_region_idx ON reading_touches (region_key);
