-- Idempotent start and forced runs that keep the previous results (issue 11). The
-- service's own tables only.

-- The caller's idempotency key of the Consolidate call that started the run: a
-- repeated call with the same key for the same closing returns this run. The
-- unique index decides between two first calls racing with one key.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS request_id text NULL;
CREATE UNIQUE INDEX IF NOT EXISTS consolidation_run_request_id_idx
    ON consolidation_run (cierre_id, request_id) WHERE request_id IS NOT NULL;

-- The rows a full run replaced, saved by the chunk commit that replaced them: the
-- employee row and its concept rows, whole (every column, the application's too),
-- so a run that ends removing its rows puts them back exactly, and a run that ends
-- keeping its rows drops them.
CREATE TABLE IF NOT EXISTS consolidation_previous_result (
    run_id      bigint NOT NULL REFERENCES consolidation_run (id) ON DELETE CASCADE,
    employee_id bigint NOT NULL, -- nomina_empleado_consolidado.id of the saved row
    employee    jsonb  NOT NULL,
    concepts    jsonb  NOT NULL, -- an array of nomina_concepto_empleado_consolidado rows
    PRIMARY KEY (run_id, employee_id)
);
