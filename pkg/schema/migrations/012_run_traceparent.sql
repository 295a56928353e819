-- Tracing: the W3C traceparent of the Consolidate call that started a run, so the
-- run's trace links to it whoever drives the run (another replica, a restarted
-- coordinator). NULL when the call carried no trace context. The service's own
-- table: the column is added where a run table predates it.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS traceparent text NULL;
