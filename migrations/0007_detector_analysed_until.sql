-- gridwatch schema, version 7: the daily meter analyses (unlicensed mining, tampering, the
-- regional mining share) run in their own transaction after the windows are committed, so that
-- a window's diversion findings never wait for them. `analysed_until` is the event time up to
-- which they are done: every day end after it and up to `evaluated_until` is still to analyse.

ALTER TABLE detector_progress ADD COLUMN IF NOT EXISTS analysed_until timestamptz;
UPDATE detector_progress SET analysed_until = evaluated_until WHERE analysed_until IS NULL;
