-- migrate:no-transaction
-- Indexes the service needs on the application's tables (docs/database.md), built
-- CONCURRENTLY so the application keeps writing, and only when missing. Each
-- statement runs on its own; an index left INVALID by a build that failed is
-- dropped (CONCURRENTLY) and built again by the migrator.

-- Novedades are matched to the libro by (closing, canonical RUT); movements have no
-- closing and are matched by canonical RUT alone (nomina_rut_canonical, 002).
CREATE INDEX CONCURRENTLY IF NOT EXISTS nomina_empleado_cierre_novedades_cierre_rut_canonical_idx
    ON nomina_empleado_cierre_novedades (cierre_id, nomina_rut_canonical(rut));
CREATE INDEX CONCURRENTLY IF NOT EXISTS nomina_movimiento_alta_baja_rut_canonical_idx
    ON nomina_movimiento_alta_baja (nomina_rut_canonical(rut));
CREATE INDEX CONCURRENTLY IF NOT EXISTS nomina_movimiento_ausentismo_rut_canonical_idx
    ON nomina_movimiento_ausentismo (nomina_rut_canonical(rut));

-- Refusal checks (repeated RUTs) and the count of novedades without a libro match
-- look libro employees up by (closing, canonical RUT).
CREATE INDEX CONCURRENTLY IF NOT EXISTS nomina_empleado_cierre_cierre_rut_canonical_idx
    ON nomina_empleado_cierre (cierre_id, nomina_rut_canonical(rut));
