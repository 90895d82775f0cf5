-- gridwatch schema, version 8: `withdrawn`, the status the detector alone sets when readings
-- that arrived later show that a condition never held. A withdrawn anomaly is not open: it
-- leaves the auditors' queue, `open_anomalies`, the open-anomaly gauges and the alerts built on
-- them, and keeps its history. Before this version a withdrawal only marked the evidence
-- (`evidence.withdrawn`) and left the status open; those anomalies take the new status now,
-- each with a history entry saying so.

ALTER TABLE anomalies DROP CONSTRAINT IF EXISTS anomalies_status_check;
ALTER TABLE anomalies ADD CONSTRAINT anomalies_status_check
    CHECK (status IN ('open', 'investigating', 'confirmed', 'dismissed', 'withdrawn'));

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        UPDATE anomalies a SET status = 'withdrawn', updated_at = now()
        FROM (SELECT id, status FROM anomalies
              WHERE evidence ? 'withdrawn' AND status IN ('open', 'investigating')
              FOR UPDATE) old
        WHERE a.id = old.id
        RETURNING a.*, old.status AS from_status
    LOOP
        PERFORM gridwatch_record_history(r.id, 'detector', 'transition', r.from_status, r.status,
            r.evidence ->> 'withdrawn',
            jsonb_build_object(
                'id', r.id, 'kind', r.kind, 'region', r.region, 'node', r.node,
                'meter', r.meter, 'licence', r.licence,
                'started_at', to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'ended_at', to_char(r.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'detected_at', to_char(r.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'energy_wh', r.energy_wh, 'loss_kzt', r.loss_kzt, 'score', r.score,
                'confidence', r.confidence, 'severity', r.severity, 'status', r.status,
                'suspects', to_jsonb(r.suspects), 'evidence', r.evidence));
    END LOOP;
END $$;
