-- gridwatch schema, version 9: the watermark from the region's sources (CONTRACT.md section 5).
-- One source running ahead, a data concentrator uploading its day before the others, must not
-- move a region's event time past the meters still to report; so ingest records, with every
-- batch it commits, how far each meter in it has reported, and the detector keeps each meter's
-- progress and takes the region's watermark from the meters still reporting.

-- Written in the batch's transaction, one row per meter of the batch (its newest reading time);
-- consumed (deleted) by the detector in its own, like reading_touches.
CREATE TABLE source_touches (
    region_key  integer NOT NULL,
    meter_key   integer NOT NULL,
    newest_ts   timestamptz NOT NULL
);
CREATE INDEX source_touches_region_idx ON source_touches (region_key);

-- The detector's view of every source: the newest reading time it has reported.
CREATE TABLE detector_sources (
    meter_key   integer PRIMARY KEY,
    region_key  integer NOT NULL,
    newest_ts   timestamptz NOT NULL,
    heard_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detector_sources_region_idx ON detector_sources (region_key, newest_ts);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_ingest') THEN
        GRANT INSERT ON source_touches TO gridwatch_ingest;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_detector') THEN
        GRANT SELECT, DELETE ON source_touches TO gridwatch_detector;
        GRANT SELECT, INSERT, UPDATE ON detector_sources TO gridwatch_detector;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_api') THEN
        GRANT SELECT ON detector_sources TO gridwatch_api;
    END IF;
END $$;
