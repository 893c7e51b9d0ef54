from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from ..selectors import sdk_principal_for_secret


class SDKKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <sdk key>`. Served from the cache, so a warm request runs no SQL."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Authorization header must be `Bearer <sdk key>`.")
        principal = sdk_principal_for_secret(parts[1].decode("latin-1"))
        if principal is None:
            raise AuthenticationFailed("Unknown SDK key.")
        if principal.revoked:
            raise AuthenticationFailed("This SDK key has been revoked.")
        return principal, None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="cutover-sdk"'


class SDKKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = SDKKeyAuthentication
    name = "sdkKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An environment's SDK key."}
