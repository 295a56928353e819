-- Truthful accounting of an interrupted run (docs/rules.md, "Counting a run"):
-- the chunks a run ends before they do (a cancel, the time limit, a permanent
-- database error) are 'cancelled', not 'failed': they were never tried, or their
-- attempt was abandoned. rows_removed records that the run's end removed every
-- row it wrote, so a report counts employees and records from the rows that
-- remain. The service's own table: safe to repeat. Runs ended before this
-- migration keep what they recorded ('failed', rows_removed false).
ALTER TABLE consolidation_chunk DROP CONSTRAINT IF EXISTS consolidation_chunk_status_check;
ALTER TABLE consolidation_chunk ADD CONSTRAINT consolidation_chunk_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'split', 'cancelled'));
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS rows_removed boolean NOT NULL DEFAULT false;
