-- gridwatch schema, version 5: least-privilege database roles, one per service.
--
-- A deployment runs `gridwatch migrate` as the schema's owner, then connects each service as a
-- login role that is a member of one of these (for example
-- `CREATE ROLE api_login LOGIN PASSWORD '...' IN ROLE gridwatch_api;` and
-- `migrate_on_start = false` for that service). None of them may UPDATE, DELETE or TRUNCATE
-- anomaly_history, nor even INSERT into it directly: an entry can only be appended through
-- gridwatch_record_history, which computes its hash. So a service whose credentials leak can
-- add to the history, never rewrite it; what a superuser might still do is what
-- `gridwatch audit verify` is for.
--
-- Roles are cluster-wide while grants are per database: parallel test databases migrate at
-- once, so creating a role tolerates another session creating it first (duplicate_object, or
-- unique_violation when both insert into pg_authid at the same moment). An owner without
-- CREATEROLE gets a notice instead of a failed migration, and the grants for roles that do not
-- exist are skipped. Later migrations that add tables grant them to these roles themselves.

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['gridwatch_ingest', 'gridwatch_detector', 'gridwatch_api'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database's migration created it just now
                WHEN insufficient_privilege THEN
                    RAISE NOTICE 'gridwatch: cannot create role % (no CREATEROLE); create it as an administrator and migrate again', role_name;
            END;
        END IF;
    END LOOP;
END $$;

-- The history is appended only through this function, which runs with its owner's rights and
-- a fixed search_path (so that no caller can substitute its own sha256 or table).
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION gridwatch_record_history(text, text, text, text, text, text, jsonb)
             SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
    -- Partitions are created by the owner too: ingest needs no CREATE on the schema.
    EXECUTE format(
        'ALTER FUNCTION gridwatch_ensure_reading_partitions(timestamptz, timestamptz)
             SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION gridwatch_record_history(text, text, text, text, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION gridwatch_ensure_reading_partitions(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON anomaly_history FROM PUBLIC;

DO $$
BEGIN
    -- Ingest: reads the registry, writes readings, rejections and its bookkeeping.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_ingest') THEN
        GRANT SELECT ON regions, nodes, meters, licences, registry_state TO gridwatch_ingest;
        GRANT SELECT, INSERT ON readings, rejections, reading_touches TO gridwatch_ingest;
        GRANT SELECT, INSERT, UPDATE ON rejection_counts, ingest_counters TO gridwatch_ingest;
        GRANT EXECUTE ON FUNCTION gridwatch_ensure_reading_partitions(timestamptz, timestamptz)
            TO gridwatch_ingest;
    END IF;

    -- The detector: reads everything but the history's writers' tables, writes its own state
    -- and anomalies, consumes reading_touches.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_detector') THEN
        GRANT SELECT ON regions, nodes, meters, licences, registry_state, registry_changes,
            readings, purchases, purchase_attempts, ingest_counters, reading_touches,
            detector_progress, detector_node_windows, detector_node_models, anomalies,
            anomaly_history TO gridwatch_detector;
        GRANT INSERT, UPDATE ON detector_progress, detector_node_windows, detector_node_models,
            anomalies TO gridwatch_detector;
        GRANT DELETE ON reading_touches TO gridwatch_detector;
        GRANT EXECUTE ON FUNCTION gridwatch_record_history(text, text, text, text, text, text, jsonb)
            TO gridwatch_detector;
    END IF;

    -- The API: the registry (import), purchases and their refusals, anomalies and their life
    -- cycle, evidence (readings and the detector's windows), status.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_api') THEN
        GRANT SELECT ON regions, nodes, meters, licences, registry_state, registry_changes,
            readings, rejections, rejection_counts, ingest_counters, purchases,
            purchase_attempts, detector_progress, detector_node_windows, anomalies,
            anomaly_history TO gridwatch_api;
        GRANT INSERT, UPDATE ON regions, nodes, meters, licences, anomalies TO gridwatch_api;
        GRANT UPDATE ON registry_state TO gridwatch_api;
        GRANT INSERT ON registry_changes, purchases, purchase_attempts, rejections
            TO gridwatch_api;
        GRANT INSERT, UPDATE ON rejection_counts TO gridwatch_api;
        GRANT EXECUTE ON FUNCTION gridwatch_record_history(text, text, text, text, text, text, jsonb)
            TO gridwatch_api;
    END IF;
END $$;

-- Identity columns draw from their sequences with the inserting role's rights; the history's
-- sequence is drawn by gridwatch_record_history alone.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['gridwatch_ingest', 'gridwatch_detector', 'gridwatch_api'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO %I',
                current_schema(), role_name);
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I',
                pg_get_serial_sequence('anomaly_history', 'seq'), role_name);
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), role_name);
        END IF;
    END LOOP;
END $$;
