-- gridwatch schema, version 11: a region's IANA time zone (docs/CONTRACT.md section 1). Daily
-- analyses, daily profiles and the days in evidence are the region's local days; NULL is UTC.

ALTER TABLE regions ADD COLUMN timezone text;
