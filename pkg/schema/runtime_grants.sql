-- The service's run-time role (docs/architecture.md, "Deployment"): exactly what the
-- coordinator and the workers read and write, nothing more. The migration runs as
-- the tables' owner; run this after it, as the owner.
GRANT USAGE ON SCHEMA public TO {{role}};

-- Sources: read only, and only the tables the service reads.
GRANT SELECT ON nomina_cierrenomina, nomina_discrepanciacierre, nomina_empleado_cierre,
    nomina_registro_concepto_empleado, nomina_empleado_cierre_novedades,
    nomina_registro_concepto_empleado_novedades, nomina_movimiento_alta_baja,
    nomina_movimiento_ausentismo TO {{role}};
-- A run moves the closing's estado, and only that column.
GRANT UPDATE (estado) ON nomina_cierrenomina TO {{role}};

-- Results: written and replaced by runs; ids come from the tables' sequences.
GRANT SELECT, INSERT, DELETE ON nomina_empleado_consolidado, nomina_concepto_empleado_consolidado,
    nomina_metrica_consolidacion TO {{role}};
GRANT USAGE ON SEQUENCE nomina_empleado_consolidado_id_seq, nomina_concepto_empleado_consolidado_id_seq,
    nomina_metrica_consolidacion_id_seq TO {{role}};
-- A forced run keeps the row of an employee whose result did not change and
-- re-stamps only the run that wrote it (docs/rules.md, "Previous results").
GRANT UPDATE (consolidation_run_id) ON nomina_empleado_consolidado TO {{role}};

-- The service's own tables: the run and chunk ledger, every dispatch, and the
-- previous results a running full run replaced (read, written, locked, removed).
GRANT SELECT, INSERT, UPDATE, DELETE ON consolidation_run, consolidation_chunk, consolidation_chunk_attempt,
    consolidation_previous_result, consolidation_previous_chunk TO {{role}};
GRANT USAGE ON SEQUENCE consolidation_run_id_seq TO {{role}};
GRANT EXECUTE ON FUNCTION nomina_rut_canonical(text) TO {{role}};
