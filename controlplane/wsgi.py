import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
_django = get_wsgi_application()

# Imported once Django is set up: it reads models and settings.
from migrations_app.api.config_poll import ConfigPollFastPath  # noqa: E402

# "Unchanged" SDK config polls are answered 304 before Django's middleware; everything else is Django's.
application = ConfigPollFastPath(_django)
