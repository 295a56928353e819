"""Settings for the stand-in payroll application: what `migrate`, the ORM and the cache need.

The database is DJANGO_DATABASE_URL (postgres://user[:password]@host:port/name). With
DJANGO_REDIS_URL set, the default cache is the application's: django-redis with its JSON
serializer, KEY_PREFIX and VERSION from DJANGO_CACHE_KEY_PREFIX and DJANGO_CACHE_VERSION, the
same variables the coordinator reads to write the progress keys this cache reads (README, "The
payroll application's progress view").
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
ROOT_URLCONF = "payroll.urls"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# The consolidation service's HTTP API (nomina.views.consolidar_datos_nomina).
CONSOLIDATION_HTTP_URL = os.environ.get("CONSOLIDATION_HTTP_URL", "https://localhost:8080")
CONSOLIDATION_TLS_CA = os.environ.get("CONSOLIDATION_TLS_CA", "")
CONSOLIDATION_TLS_CERT = os.environ.get("CONSOLIDATION_TLS_CERT", "")
CONSOLIDATION_TLS_KEY = os.environ.get("CONSOLIDATION_TLS_KEY", "")
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

if os.environ.get("DJANGO_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["DJANGO_REDIS_URL"],
            "KEY_PREFIX": os.environ.get("DJANGO_CACHE_KEY_PREFIX", ""),
            "VERSION": int(os.environ.get("DJANGO_CACHE_VERSION", "1")),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            },
        }
    }
