-- Refusal checks (repeated RUTs) and the count of novedades without a libro match
-- look libro employees up by (closing, canonical RUT).
CREATE INDEX IF NOT EXISTS nomina_empleado_cierre_cierre_rut_canonical_idx
    ON nomina_empleado_cierre (cierre_id, nomina_rut_canonical(rut));
