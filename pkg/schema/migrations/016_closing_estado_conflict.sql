-- The application writing the closing's estado while a run of it is in progress
-- (a stale save of the closing, say): the run's end does not write over it, and
-- records here the estado it found instead of consolidando_datos
-- (docs/rules.md, "The application writing estado mid-run"). NULL: no conflict.
-- The service's own table: the column is added where a run table predates it.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS closing_estado_found varchar(40) NULL;
