-- Poison isolation (docs/lifecycle.md#how-a-run-ends): a chunk that fails for a non-transient
-- reason, or whose workers keep dying, is split in two and each half dispatched,
-- down to single employees. The parent keeps its row with status 'split'; the
-- halves are appended as new chunk indexes naming it (parent_index). A failed
-- leaf whose workers died on every attempt says so (worker_died), which decides
-- error_recursos. The service's own table: safe to repeat.
ALTER TABLE consolidation_chunk ADD COLUMN IF NOT EXISTS parent_index integer NULL;
ALTER TABLE consolidation_chunk ADD COLUMN IF NOT EXISTS worker_died boolean NOT NULL DEFAULT false;
ALTER TABLE consolidation_chunk DROP CONSTRAINT IF EXISTS consolidation_chunk_status_check;
ALTER TABLE consolidation_chunk ADD CONSTRAINT consolidation_chunk_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'split'));
