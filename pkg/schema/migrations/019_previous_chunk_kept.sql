-- Re-runs that keep unchanged rows (issue 24; docs/rules.md, "Previous results"):
-- a chunk commit leaves the row of an employee whose result did not change where
-- it is and only re-stamps its consolidation_run_id. The saved row of the chunk
-- records which rows it re-stamped and the run id each had (NULL elements: rows
-- written by no run), so a run that removes its rows puts the previous run ids
-- back. The service's own table; a constant default is a catalog-only change:
-- safe to repeat.
ALTER TABLE consolidation_previous_chunk
    ADD COLUMN IF NOT EXISTS kept_ids     bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS kept_run_ids bigint[] NOT NULL DEFAULT '{}';
