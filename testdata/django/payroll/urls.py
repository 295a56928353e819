"""The application's consolidation routes, as its DRF actions on closings named them."""
from django.urls import path

from nomina import views

urlpatterns = [
    path("api/nomina/cierres/<int:pk>/consolidar_datos_nomina/", views.consolidar_datos_nomina),
    path("api/nomina/cierres/<int:pk>/progreso_consolidacion/", views.progreso_consolidacion),
]
