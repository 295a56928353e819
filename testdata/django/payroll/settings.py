"""Settings for the stand-in payroll application: only what `migrate` and the ORM need.

The database is DJANGO_DATABASE_URL (postgres://user[:password]@host:port/name).
"""
import os
from urllib.parse import unquote, urlparse

_url = urlparse(os.environ.get("DJANGO_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payroll"))

SECRET_KEY = "testdata-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "America/Santiago"
INSTALLED_APPS = ["nomina"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
