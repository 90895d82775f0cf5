-- gridwatch schema, version 10: the event time each source first reported, so that the meters of a
-- region that have not reported yet hold its watermark back for a while (docs/CONTRACT.md
-- section 5). A head-end that uploads each concentrator's day after midnight leaves every
-- concentrator's meters unheard for the whole first day while the meters reporting live move on.

ALTER TABLE detector_sources ADD COLUMN first_ts timestamptz;
-- Unknown for the sources of an older version: their newest reading stands in for it.
