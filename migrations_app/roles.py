"""Staff roles: three Django groups carrying model permissions (docs/security.md).

- cutover-viewer: reads everything except SDK keys, notification channels and API tokens (credentials live
  there, even if masked).
- cutover-operator: the viewer's reads, plus creating and editing plans, endpoints and environments, the
  lifecycle actions (`operate_migrationplan`), evaluation datasets, runs and schedules.
- cutover-admin: every permission of this app (SDK keys and notification channels included) and the ops API
  tokens (knox). Superusers hold every permission, so they are admins too.

Pure data and one function taking an app registry, so the data migration (0005_staff_roles) and the
post_migrate hook (apps.py, which keeps the groups complete after a test database flush) share it.
"""

VIEWER = "cutover-viewer"
OPERATOR = "cutover-operator"
ADMIN = "cutover-admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

APP = "migrations_app"
# The custom permission behind the lifecycle buttons and POST /api/v1/plans/{key}/{action}/.
OPERATE_CODENAME = "operate_migrationplan"
OPERATE_PERMISSION = f"{APP}.{OPERATE_CODENAME}"

# Model names (lower case) of this app that only admins may see or touch.
ADMIN_ONLY_MODELS = frozenset({"sdkkey", "notificationchannel"})
# What an operator writes, on top of reading: (model, actions).
OPERATOR_WRITES = {
    "environment": ("add",),
    "modelendpoint": ("add", "change"),
    "migrationplan": ("add", "change"),
    "rolloutstep": ("add", "change", "delete"),
    "healthrule": ("add", "change", "delete"),
    "evaluationdataset": ("add", "change"),
    "evaluationcase": ("add", "change"),
    "evaluationrun": ("add", "change"),
    "evaluationschedule": ("add", "change", "delete"),
}
# Outside this app, admins get these (app label, model): the ops API tokens.
ADMIN_EXTRA_MODELS = (("knox", "authtoken"),)


def role_permissions(models_of_app: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Each role's permissions as (app label, codename), given this app's model names (lower case)."""
    viewer = {(APP, f"view_{model}") for model in models_of_app if model not in ADMIN_ONLY_MODELS}
    operator = viewer | {(APP, OPERATE_CODENAME)} | {
        (APP, f"{action}_{model}") for model, actions in OPERATOR_WRITES.items() if model in models_of_app
        for action in actions}
    admin = operator | {(APP, OPERATE_CODENAME)} | {
        (APP, f"{action}_{model}") for model in models_of_app for action in ("add", "change", "delete", "view")}
    admin |= {(app, f"{action}_{model}") for app, model in ADMIN_EXTRA_MODELS
              for action in ("add", "change", "delete", "view")}
    return {VIEWER: viewer, OPERATOR: operator, ADMIN: admin}


def roles_sync(apps) -> None:
    """Create the three groups and give each its permissions (creating missing permission rows, as the
    post_migrate hook would later). Adds only: permissions an admin granted by hand are kept."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    app_models = {model._meta.model_name: model for model in apps.get_app_config(APP).get_models()}
    for role, wanted in role_permissions(sorted(app_models)).items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for app_label, codename in sorted(wanted):
            action, _, model_name = codename.partition("_")
            if app_label != APP:
                try:
                    apps.get_model(app_label, model_name)
                except LookupError:  # an app not installed: nothing to grant
                    continue
            if codename == OPERATE_CODENAME:
                model_name, name = "migrationplan", "Can operate migration plan (lifecycle actions)"
            else:
                verbose = apps.get_model(app_label, model_name)._meta.verbose_name
                name = f"Can {action} {verbose}"
            content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model_name)
            permission, _ = Permission.objects.get_or_create(content_type=content_type, codename=codename,
                                                             defaults={"name": name[:255]})
            permissions.append(permission)
        group.permissions.add(*permissions)
