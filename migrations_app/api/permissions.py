"""Who may call what. The ops API is for staff users holding a role (migrations_app.roles): viewers read,
operators write plans, endpoints and evaluations and run the lifecycle actions, admins also manage SDK keys.
Roles are Django groups carrying model permissions, so the API and the admin decide alike. An SDK key is
never a user: it can call the SDK API only, with the scope each view requires."""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..roles import APP
from ..selectors import SDKPrincipal

# The model permission a request needs, by HTTP method (view: read; add: create; change: edit or act).
METHOD_ACTIONS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change",
                  "PATCH": "change", "DELETE": "delete"}


def is_staff_user(user) -> bool:
    return isinstance(user, AbstractBaseUser) and user.is_active and user.is_staff


class IsStaffUser(BasePermission):
    """A staff user, whatever their role (an SDK key is never a user)."""

    message = "The ops API needs a staff user (session or `Authorization: Token …`); SDK keys cannot call it."

    def has_permission(self, request, view) -> bool:
        return is_staff_user(request.user)


class HasStaffRole(IsStaffUser):
    """A staff user whose role grants the permission the request needs.

    The view names its model (`permission_model`, or its queryset's) and may map its extra actions or
    methods to other permissions (`action_permissions`, `{"start": "migrations_app.operate_migrationplan"}`,
    or an action like "change"). By default a safe method needs `view_<model>`, POST `add_<model>`, PUT and
    PATCH `change_<model>`, DELETE `delete_<model>`."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        needed = self.required_permission(request, view)
        if request.user.has_perm(needed):
            return True
        reading = request.method in SAFE_METHODS
        self.message = (f"Your role does not allow this ({'reading' if reading else 'this change'} needs the "
                        f"{needed} permission; roles: cutover-viewer, cutover-operator, cutover-admin).")
        return False

    @staticmethod
    def required_permission(request, view) -> str:
        overrides = getattr(view, "action_permissions", {})
        wanted = overrides.get(getattr(view, "action", None)) or overrides.get(request.method) \
            or METHOD_ACTIONS.get(request.method, "change")
        if "." in wanted:
            return wanted
        model = getattr(view, "permission_model", None)
        if model is None:
            model = view.get_queryset().model
        return f"{APP}.{wanted}_{model._meta.model_name}"


class HasSDKScope(BasePermission):
    """The SDK API: an SDK key carrying the view's `required_scope`."""

    def has_permission(self, request, view) -> bool:
        principal = request.user
        scope = view.required_scope
        self.message = f"this SDK key lacks the {scope} scope"
        return isinstance(principal, SDKPrincipal) and principal.has_scope(scope)
