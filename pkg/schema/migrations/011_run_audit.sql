-- Audit (docs/security-model.md): the identity of the caller that started a run (its
-- certificate's first URI SAN, else DNS SAN, else CN) and of the first caller that
-- cancelled it; NULL when the services run without TLS. The service's own table:
-- the columns are added where a run table predates them.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS requested_by text NULL;
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS cancelled_by text NULL;
