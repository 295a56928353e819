-- Ownership of a run by lease (docs/lifecycle.md#more-than-one-coordinator): the replica driving a run holds
-- it until lease_expires_at and renews it by heartbeat; every acquisition moves
-- lease_epoch on, and every dispatch, chunk failure and finish checks the epoch in
-- the same statement, so a replica that lost the lease can no longer change the
-- run. The service's own table: the columns are added where a run table predates
-- them.
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS lease_owner text NULL;
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE consolidation_run ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz NULL;
