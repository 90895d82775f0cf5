-- gridwatch schema, version 6: the detector forgets the loss models of the days after a day
-- whose windows late readings re-judged, so that they are fitted again on the corrected
-- windows (a day's model does not depend on how its readings arrived).

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridwatch_detector') THEN
        GRANT DELETE ON detector_node_models TO gridwatch_detector;
    END IF;
END $$;
