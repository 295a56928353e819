-- The service's own columns on the application's result tables (docs/database.md):
-- 003 creates the tables with them only where the tables are missing; on tables
-- Django created they are added here, nullable, without a default (a catalog-only
-- change). The lock it needs is brief, but it queues behind the application's open
-- transactions, so give up rather than hold everyone else behind it.
SET LOCAL lock_timeout = '10s';

-- The run that wrote the row, so a failed, cancelled or timed-out run removes
-- exactly its own rows.
ALTER TABLE nomina_empleado_consolidado ADD COLUMN IF NOT EXISTS consolidation_run_id bigint NULL;
-- The run the metrics row describes.
ALTER TABLE nomina_metrica_consolidacion ADD COLUMN IF NOT EXISTS consolidation_run_id bigint NULL;
