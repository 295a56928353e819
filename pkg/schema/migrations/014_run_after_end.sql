-- The steps after a run's end (its progress and the closing's keys in Redis, the
-- watchers' notification, the end's log line and metrics) are recorded on the run,
-- so that they run exactly once, by whichever replica sees the end first, even when
-- the driver that recorded the end was cancelled, lost its lease or died right after
-- the commit (docs/architecture.md, "The end of a run"). A replica claims the steps
-- for a while (after_end_claimed_by, after_end_claimed_until) and marks them done;
-- a claim that expires unfinished is taken by the next reconciler pass.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS after_end_done_at timestamptz NULL;
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS after_end_claimed_by text NULL;
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS after_end_claimed_until timestamptz NULL;
-- Runs that ended before this migration had their steps done by the code of the day.
UPDATE consolidation_run SET after_end_done_at = finished_at
WHERE finished_at IS NOT NULL AND after_end_done_at IS NULL;
-- The reconciler's look-up: ended runs whose steps are not done (a handful at most).
CREATE INDEX IF NOT EXISTS consolidation_run_after_end_idx ON consolidation_run (id)
WHERE finished_at IS NOT NULL AND after_end_done_at IS NULL;
