-- Cheaper forced re-runs (issue 24; docs/benchmarks.md, "Re-runs"): the rows a
-- full run replaced are saved one row per chunk commit, as json arrays of whole
-- rows (every column by name, the application's too), in place of one row per
-- employee as jsonb, which cost more to build than writing the rows in the first
-- place. consolidation_previous_result stays, read and emptied by a run's end,
-- for rows saved by a version before this one. The service's own table: safe to
-- repeat.
CREATE TABLE IF NOT EXISTS consolidation_previous_chunk (
    run_id      bigint  NOT NULL REFERENCES consolidation_run (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL, -- the chunk whose commit replaced the rows
    employees   json    NOT NULL, -- an array of nomina_empleado_consolidado rows
    concepts    json    NOT NULL, -- an array of nomina_concepto_empleado_consolidado rows
    PRIMARY KEY (run_id, chunk_index)
);

-- lz4 compresses the saved arrays several times faster than PostgreSQL's default
-- (pglz); a server built without lz4 (feature_not_supported), or older than
-- PostgreSQL 14, which has no SET COMPRESSION (its parser would refuse the
-- statement, hence EXECUTE), keeps the default.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 140000 THEN
        EXECUTE 'ALTER TABLE consolidation_previous_chunk ALTER COLUMN employees SET COMPRESSION lz4, '
            'ALTER COLUMN concepts SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
