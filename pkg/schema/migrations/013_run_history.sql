-- Run history (ListConsolidations): newest first, paged by (started_at, id). The
-- service's own table, small beside the results, so a plain index.
CREATE INDEX IF NOT EXISTS consolidation_run_started_idx ON consolidation_run (started_at DESC, id DESC);
