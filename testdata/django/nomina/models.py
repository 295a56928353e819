"""The old Celery design's data models ("Modelos de Datos", with the indexes of its section "Índices"),
as the payroll application declares them. The service reads the sources and writes the
results (docs/database.md#data-contract); Django owns every table here.

Where the old Celery design and docs/database.md#data-contract differ, docs/database.md wins (it is the contract the service
keeps): MovimientoAusentismo.fecha_fin is nullable.
"""
from django.db import models


class CierreNomina(models.Model):
    mes = models.PositiveSmallIntegerField()
    anno = models.IntegerField()
    estado = models.CharField(max_length=40)
    # Columns the service does not know; Django fills them in Python, so the
    # database has NOT NULL without a default.
    cliente = models.CharField(max_length=100, default="")
    fecha_creacion = models.DateTimeField(auto_now_add=True)
    observaciones = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "nomina_cierrenomina"


class EmpleadoCierre(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    nombre = models.CharField(max_length=200)
    cargo = models.CharField(max_length=100)
    centro_costo = models.CharField(max_length=50)
    sueldo_base = models.DecimalField(max_digits=12, decimal_places=2)
    fecha_ingreso = models.DateField(null=True)

    class Meta:
        db_table = "nomina_empleado_cierre"
        indexes = [
            models.Index(fields=["cierre"], name="idx_empleado_cierre"),
            models.Index(fields=["rut"], name="idx_empleado_rut"),
            models.Index(fields=["cierre", "rut"], name="idx_empleado_cierre_rut"),
            models.Index(fields=["nombre"], name="idx_empleado_nombre"),
        ]


class DiscrepanciaCierre(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    empleado_libro = models.ForeignKey(EmpleadoCierre, on_delete=models.CASCADE, null=True)
    tipo_discrepancia = models.CharField(max_length=50, default="")
    descripcion = models.TextField(default="")
    resuelta = models.BooleanField(default=False)

    class Meta:
        db_table = "nomina_discrepanciacierre"


class RegistroConceptoEmpleado(models.Model):
    empleado = models.ForeignKey(EmpleadoCierre, on_delete=models.CASCADE)
    codigo_concepto = models.CharField(max_length=10)
    nombre_concepto = models.CharField(max_length=200)
    valor = models.DecimalField(max_digits=12, decimal_places=2)
    tipo_concepto = models.CharField(max_length=20)

    class Meta:
        db_table = "nomina_registro_concepto_empleado"
        indexes = [
            models.Index(fields=["empleado"], name="idx_concepto_empleado"),
            models.Index(fields=["codigo_concepto"], name="idx_concepto_codigo"),
            models.Index(fields=["empleado", "codigo_concepto"], name="idx_concepto_emp_cod"),
            models.Index(fields=["tipo_concepto"], name="idx_concepto_tipo"),
        ]


class EmpleadoCierreNovedades(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    nombre = models.CharField(max_length=200)
    cargo = models.CharField(max_length=100, null=True)
    centro_costo = models.CharField(max_length=50, null=True)

    class Meta:
        db_table = "nomina_empleado_cierre_novedades"
        indexes = [
            models.Index(fields=["cierre"], name="idx_novedades_cierre"),
            models.Index(fields=["rut"], name="idx_novedades_rut"),
            models.Index(fields=["cierre", "rut"], name="idx_novedades_cierre_rut"),
        ]


class RegistroConceptoEmpleadoNovedades(models.Model):
    empleado = models.ForeignKey(EmpleadoCierreNovedades, on_delete=models.CASCADE)
    codigo_concepto = models.CharField(max_length=10)
    nombre_concepto = models.CharField(max_length=200)
    valor = models.DecimalField(max_digits=12, decimal_places=2)
    tipo_concepto = models.CharField(max_length=20)

    class Meta:
        db_table = "nomina_registro_concepto_empleado_novedades"
        indexes = [
            models.Index(fields=["empleado"], name="idx_concepto_nov_empleado"),
            models.Index(fields=["codigo_concepto"], name="idx_concepto_nov_codigo"),
            models.Index(fields=["empleado", "codigo_concepto"], name="idx_concepto_nov_emp_cod"),
        ]


class MovimientoAltaBaja(models.Model):
    rut = models.CharField(max_length=15)
    tipo_movimiento = models.CharField(max_length=20)
    fecha_movimiento = models.DateField()
    motivo = models.CharField(max_length=200, null=True)

    class Meta:
        db_table = "nomina_movimiento_alta_baja"
        indexes = [
            models.Index(fields=["rut"], name="idx_movimiento_rut"),
            models.Index(fields=["fecha_movimiento"], name="idx_movimiento_fecha"),
            models.Index(fields=["tipo_movimiento"], name="idx_movimiento_tipo"),
            models.Index(fields=["rut", "tipo_movimiento", "fecha_movimiento"], name="idx_movimiento_rut_tipo_fecha"),
        ]


class MovimientoAusentismo(models.Model):
    rut = models.CharField(max_length=15)
    tipo_ausentismo = models.CharField(max_length=50)
    fecha_inicio = models.DateField()
    fecha_fin = models.DateField(null=True)
    dias_ausentismo = models.IntegerField()

    class Meta:
        db_table = "nomina_movimiento_ausentismo"
        indexes = [
            models.Index(fields=["rut"], name="idx_ausentismo_rut"),
            models.Index(fields=["fecha_inicio"], name="idx_ausentismo_fecha_inicio"),
            models.Index(fields=["tipo_ausentismo"], name="idx_ausentismo_tipo"),
            models.Index(fields=["rut", "fecha_inicio"], name="idx_ausentismo_rut_fecha"),
        ]


class MovimientoVacaciones(models.Model):
    rut = models.CharField(max_length=15)
    fecha_inicio = models.DateField()
    fecha_fin = models.DateField()
    dias_habiles = models.IntegerField()

    class Meta:
        db_table = "nomina_movimiento_vacaciones"


class AnalistaIngreso(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    fecha_ingreso = models.DateField()
    observaciones = models.TextField(null=True)

    class Meta:
        db_table = "nomina_analista_ingreso"


class AnalistaFiniquito(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    fecha_finiquito = models.DateField()
    motivo = models.CharField(max_length=200)

    class Meta:
        db_table = "nomina_analista_finiquito"


class AnalistaIncidencia(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    tipo_incidencia = models.CharField(max_length=50)
    descripcion = models.TextField()

    class Meta:
        db_table = "nomina_analista_incidencia"


class EmpleadoConsolidado(models.Model):
    cierre = models.ForeignKey(CierreNomina, on_delete=models.CASCADE)
    empleado_origen = models.ForeignKey(EmpleadoCierre, on_delete=models.CASCADE)
    rut = models.CharField(max_length=15)
    nombre_completo = models.CharField(max_length=200)
    cargo = models.CharField(max_length=100)
    centro_costo = models.CharField(max_length=50)
    es_ingreso = models.BooleanField(default=False)
    es_finiquito = models.BooleanField(default=False)
    tiene_ausentismo = models.BooleanField(default=False)
    total_haberes = models.DecimalField(max_digits=12, decimal_places=2)
    total_descuentos = models.DecimalField(max_digits=12, decimal_places=2)
    liquido_pagar = models.DecimalField(max_digits=12, decimal_places=2)
    fuentes_utilizadas = models.JSONField()
    reglas_aplicadas = models.JSONField()
    discrepancias_resueltas = models.IntegerField(default=0)
    fecha_consolidacion = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "nomina_empleado_consolidado"
        unique_together = ["cierre", "rut"]
        indexes = [
            models.Index(fields=["cierre", "rut"], name="idx_consolidado_cierre_rut"),
            models.Index(fields=["cierre"], name="idx_consolidado_cierre"),
            models.Index(fields=["rut"], name="idx_consolidado_rut"),
            models.Index(fields=["es_ingreso"], name="idx_consolidado_ingreso"),
            models.Index(fields=["es_finiquito"], name="idx_consolidado_finiquito"),
            models.Index(fields=["tiene_ausentismo"], name="idx_consolidado_ausentismo"),
            models.Index(fields=["es_ingreso", "es_finiquito"], name="idx_consolidado_estados"),
            models.Index(fields=["fecha_consolidacion"], name="idx_consolidado_fecha"),
            models.Index(fields=["total_haberes"], name="idx_consolidado_haberes"),
            models.Index(fields=["liquido_pagar"], name="idx_consolidado_liquido"),
        ]


class ConceptoEmpleadoConsolidado(models.Model):
    empleado_consolidado = models.ForeignKey(EmpleadoConsolidado, on_delete=models.CASCADE, related_name="conceptos")
    codigo_concepto = models.CharField(max_length=10)
    nombre_concepto = models.CharField(max_length=200)
    valor = models.DecimalField(max_digits=12, decimal_places=2)
    tipo_concepto = models.CharField(max_length=20)
    fuente_dato = models.CharField(max_length=20)

    class Meta:
        db_table = "nomina_concepto_empleado_consolidado"
        unique_together = ["empleado_consolidado", "codigo_concepto"]
        indexes = [
            models.Index(fields=["empleado_consolidado"], name="idx_concepto_cons_empleado"),
            models.Index(fields=["codigo_concepto"], name="idx_concepto_cons_codigo"),
            models.Index(fields=["empleado_consolidado", "codigo_concepto"], name="idx_concepto_cons_emp_cod"),
            models.Index(fields=["tipo_concepto"], name="idx_concepto_cons_tipo"),
            models.Index(fields=["fuente_dato"], name="idx_concepto_cons_fuente"),
            models.Index(fields=["valor"], name="idx_concepto_cons_valor"),
        ]


class MetricaConsolidacion(models.Model):
    cierre = models.OneToOneField(CierreNomina, on_delete=models.CASCADE, related_name="metrica_consolidacion")
    total_empleados = models.IntegerField()
    chunks_procesados = models.IntegerField()
    chunks_exitosos = models.IntegerField()
    registros_creados = models.IntegerField()
    tiempo_total = models.FloatField()
    tiempo_promedio_chunk = models.FloatField(null=True)
    throughput_empleados_sec = models.FloatField(null=True)
    throughput_registros_sec = models.FloatField(null=True)
    memoria_pico_mb = models.FloatField(null=True)
    cpu_promedio_percent = models.FloatField(null=True)
    chunk_size_utilizado = models.IntegerField()
    workers_utilizados = models.IntegerField(null=True)
    version_algoritmo = models.CharField(max_length=20, default="v2.0")
    fecha_procesamiento = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "nomina_metrica_consolidacion"
        indexes = [
            models.Index(fields=["fecha_procesamiento"]),
            models.Index(fields=["tiempo_total"]),
            models.Index(fields=["throughput_empleados_sec"]),
        ]
