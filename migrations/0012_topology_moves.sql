-- gridwatch schema, version 12: consumers the detector found fed from another node than the
-- registry says (docs/CONTRACT.md section 4, `topology_change`). From `since` on, the detector
-- counts each meter on `to_node_key` when it balances the nodes, so that the rest of the
-- receiving node's residual is still checked for theft. A move stops applying once the registry
-- puts the meter there (an investigator confirmed it and applied the change). `rejudged` is
-- false until the detector has evaluated the windows from `since` again with the move.

CREATE TABLE detector_moves (
    meter_key      integer PRIMARY KEY REFERENCES meters (meter_key) ON DELETE CASCADE,
    region_key     integer NOT NULL,
    from_node_key  integer NOT NULL,
    to_node_key    integer NOT NULL,
    since          timestamptz NOT NULL,
    anomaly_id     text NOT NULL,
    rejudged       boolean NOT NULL DEFAULT false,
    found_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detector_moves_region_idx ON detector_moves (region_key);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_detector') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON detector_moves TO gridwatch_detector;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_api') THEN
        GRANT SELECT ON detector_moves TO gridwatch_api;
    END IF;
END $$;
