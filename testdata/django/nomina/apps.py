from django.apps import AppConfig


class NominaConfig(AppConfig):
    name = "nomina"
