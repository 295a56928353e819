"""The payroll application's consolidation views, over the consolidation service.

progreso_consolidacion is the application's progress view as it was, unchanged: it reads the
closing's progress and metrics through Django's cache, which the coordinator writes as django-redis
with its JSON serializer stores them (README, "The payroll application's progress view").

consolidar_datos_nomina starts a run through the service's HTTP API (README, "HTTP API") and
answers the old response shape; a refusal answers 400, 404 or 409 with the service's message and
its ErrorInfo reason. Settings: CONSOLIDATION_HTTP_URL (the coordinator's HTTPS base URL) and
CONSOLIDATION_TLS_CA, CONSOLIDATION_TLS_CERT, CONSOLIDATION_TLS_KEY (the application's certificate).
"""
from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import CierreNomina

# The service's refusals the application answers as they are: the closing's state or the request
# (400: INVALID_ARGUMENT, FAILED_PRECONDITION), no such closing (404), a run in progress (409);
# anything else is the service failing (502).
_REFUSAL_STATUSES = (400, 404, 409)


@require_GET
def progreso_consolidacion(request, pk):
    cierre = get_object_or_404(CierreNomina, pk=pk)

    # Obtener progreso desde Redis
    progress_key = f"consolidacion_progress_cierre_{cierre.id}"
    progreso = cache.get(progress_key, {})

    # Obtener métricas de performance
    metrics_key = f"consolidacion_metrics_cierre_{cierre.id}"
    metricas = cache.get(metrics_key, {})

    estado_actual = {
        "estado": cierre.estado,
        "progreso": progreso,
        "metricas": metricas,
        "timestamp": timezone.now().isoformat(),
    }
    return JsonResponse(estado_actual)


@csrf_exempt
@require_POST
def consolidar_datos_nomina(request, pk):
    import requests  # only this view calls the service over HTTP

    cierre = get_object_or_404(CierreNomina, pk=pk)
    resp = requests.post(
        f"{settings.CONSOLIDATION_HTTP_URL.rstrip('/')}/v1/closings/{cierre.id}:consolidate",
        json={},
        cert=(settings.CONSOLIDATION_TLS_CERT, settings.CONSOLIDATION_TLS_KEY),
        verify=settings.CONSOLIDATION_TLS_CA,
        timeout=30,
    )
    body = resp.json() if resp.content else {}
    if resp.ok:
        return JsonResponse({
            "message": "Consolidación de datos iniciada",
            "task_id": int(_field(body, "consolidation_id")),
            "cierre_id": cierre.id,
            "estado": _field(body, "estado"),
        })
    info = _error_info(body)
    return JsonResponse(
        {"error": body.get("message", resp.reason), "reason": info.get("reason", ""),
         "metadata": info.get("metadata", {})},
        status=resp.status_code if resp.status_code in _REFUSAL_STATUSES else 502,
    )


def _field(body, name):
    """A response field by its proto name or its JSON (lowerCamelCase) name."""
    if name in body:
        return body[name]
    head, *rest = name.split("_")
    return body.get(head + "".join(w.title() for w in rest))


def _error_info(body):
    """The google.rpc.ErrorInfo among an error body's details ({} when none)."""
    for d in body.get("details", []):
        if d.get("@type", "").endswith("/google.rpc.ErrorInfo"):
            return d
    return {}
