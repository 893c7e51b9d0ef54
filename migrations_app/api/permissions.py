from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission

from ..selectors import SDKPrincipal


class IsStaffUser(BasePermission):
    """The ops API: staff users only (an SDK key is never a user)."""

    message = "The ops API needs a staff user (session or `Authorization: Token …`); SDK keys cannot call it."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return isinstance(user, AbstractBaseUser) and user.is_active and user.is_staff


class HasSDKScope(BasePermission):
    """The SDK API: an SDK key carrying the view's `required_scope`."""

    def has_permission(self, request, view) -> bool:
        principal = request.user
        scope = view.required_scope
        self.message = f"this SDK key lacks the {scope} scope"
        return isinstance(principal, SDKPrincipal) and principal.has_scope(scope)
