from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _roles_sync(sender, apps=global_apps, **kwargs) -> None:
    """Keep the staff-role groups complete after every migrate or flush (a flushed test database loses the
    groups 0005_staff_roles made; a model added later gets its permissions granted)."""
    from .roles import roles_sync

    roles_sync(apps)


class MigrationsAppConfig(AppConfig):
    name = "migrations_app"
    verbose_name = "Cutover migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_roles_sync, sender=self, dispatch_uid="migrations_app.roles_sync")
