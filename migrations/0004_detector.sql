-- gridwatch schema, version 4: the detector's progress, per-node balances and models.

-- How far each region has been evaluated (detector_progress was created in version 3 with the
-- watermark the status endpoint shows).
ALTER TABLE detector_progress
    ADD COLUMN evaluated_until timestamptz,
    ADD COLUMN hourly_until    timestamptz,
    ADD COLUMN daily_until     timestamptz;

-- One row per balanced node and window: the balance, what the model expected, the tests'
-- statistics and the node's detection state after the window. The state lets a late reading
-- re-run a node from the window before it, and a restarted detector resume exactly where it was;
-- the balance series is the evidence of diversion cases.
CREATE TABLE detector_node_windows (
    node_key      integer NOT NULL,
    window_start  timestamptz NOT NULL,
    input_wh      double precision,
    fed_wh        double precision NOT NULL,
    coverage      double precision NOT NULL,
    -- One standard deviation of the balance's error from interpolated or imputed meters, Wh:
    -- uncertain windows do not teach the loss model.
    uncertainty_wh double precision NOT NULL DEFAULT 0,
    expected_wh   double precision NOT NULL,
    sigma_wh      double precision NOT NULL,
    excess_wh     double precision,
    z             double precision,
    in_case       boolean NOT NULL,
    in_gap        boolean NOT NULL,
    -- Whether the node's own learned model judged the window (false under the cold-start priors):
    -- windows flagged by a learned model never teach the next day's model, so a theft is not
    -- learned as losses; windows flagged under the wide priors may (the physical cap on losses
    -- still keeps a gross theft from passing as normal).
    model_learned boolean NOT NULL,
    state         jsonb NOT NULL,
    PRIMARY KEY (node_key, window_start)
);
CREATE INDEX detector_node_windows_start_idx ON detector_node_windows (window_start);

-- A node's loss model for one UTC day, fitted once from the days before it and kept, so that
-- re-evaluating a window uses the model it was first evaluated with.
CREATE TABLE detector_node_models (
    node_key  integer NOT NULL,
    day       date NOT NULL,
    model     jsonb NOT NULL,
    PRIMARY KEY (node_key, day)
);
