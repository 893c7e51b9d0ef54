"""The SDK config poll's fast path: "my config is still version N?" answered 304 ahead of Django's middleware
and DRF.

Nearly every request a control plane serves is an SDK or sidecar asking whether its config changed, with
the ETag it holds, and nearly every answer is 304 Not Modified. Through the middleware stack and DRF that
answer costs several hundred microseconds of CPU, most of it spent on machinery a 304 does not use. This
WSGI wrapper answers it with the same cache reads (the key's principal, the environment's document), the
same rate-limit count and the same headers as SDKConfigView, and never touches the database.

It answers only when everything is plainly in order — a GET of exactly the config path, no query, a
Bearer key the cache knows, not revoked, holding config:read, an If-None-Match naming the current version,
a host Django accepts, no https redirect due, an Accept the API serves, the key within its rate limit —
and passes every other request to Django untouched, which answers it as it always has (200, 401, 403,
429, long-polls, cache misses). tests/integration/test_config_poll_fast_path.py holds the two to the same
status and headers.

settings.CUTOVER_CONFIG_FAST_PATH = False sends every request to Django.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponseNotModified
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from ..models import SDKScope
from ..selectors import (
    SDKPrincipal,
    hash_sdk_secret,
    sdk_key_cache_key,
    sdk_principal_cached,
    sdk_principal_from_cache_entry,
)
from ..services.config_cache import CachedDocument, config_cache_key
from .throttling import ALREADY_COUNTED, RateWindow, count_request, rate_window

CONFIG_PATH = "/api/v1/sdk/config"
# What DRF serves this view for without content negotiation failing (its 406); anything else goes to Django.
_PLAIN_ACCEPTS = frozenset({"", "*/*", "application/json"})
# DRF adds these to every APIView response (its `finalize_response`): Allow from the view's methods.
_DRF_HEADERS = (("Vary", "Accept"), ("Allow", "GET, HEAD, OPTIONS"))
_MAX_KNOWN_KEYS = 10_000


def version_from_etag(header: str | None) -> int | None:
    """The version an If-None-Match names ('"42"', 'W/"42"', the first of a list), or None."""
    if not header:
        return None
    tag = header.split(",")[0].strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else None


class ConfigPollFastPath:
    """WSGI middleware around Django's application (controlplane/wsgi.py)."""

    def __init__(self, application) -> None:
        self.application = application
        self._known_keys: dict[str, _KnownKey] = {}  # by hashed secret
        # Only their response halves run here (they add headers); get_response is never called.
        self._security = SecurityMiddleware(get_response=application)
        self._xframe = XFrameOptionsMiddleware(get_response=application)

    def __call__(self, environ, start_response):
        if (environ.get("PATH_INFO") == CONFIG_PATH and environ.get("REQUEST_METHOD") == "GET"
                and not environ.get("QUERY_STRING") and "HTTP_IF_NONE_MATCH" in environ
                and settings.CUTOVER_CONFIG_FAST_PATH):
            headers = self.not_modified_headers(environ)
            if headers is not None:
                start_response("304 Not Modified", headers)
                return []
        return self.application(environ, start_response)

    def not_modified_headers(self, environ) -> list[tuple[str, str]] | None:
        """The 304's headers when this request is a plain poll of the current version, else None."""
        known_version = version_from_etag(environ["HTTP_IF_NONE_MATCH"])
        secret = _bearer_secret(environ.get("HTTP_AUTHORIZATION", ""))
        if known_version is None or secret is None or environ.get("HTTP_ACCEPT", "") not in _PLAIN_ACCEPTS:
            return None
        hashed = hash_sdk_secret(secret)
        key = self._known_keys.get(hashed) or self._learn_key(hashed, secret)
        if key is None:
            return None
        request = WSGIRequest(environ)
        if not self._request_passes_django_checks(request):
            return None
        window = rate_window(key.prefix, "config")
        try:
            principal, document, wait = _read_principal_and_document(hashed, key, window)
        except Exception:  # the cache is down: Django answers (from the database) and logs it
            return None
        if window is not None:
            environ[ALREADY_COUNTED] = wait
        if (principal is None or principal.revoked or not principal.has_scope(SDKScope.CONFIG_READ)
                or principal.environment_id != key.environment_id or document is None
                or document.version != known_version or wait is not None):
            return None
        response = HttpResponseNotModified(headers={"ETag": document.etag, "Cache-Control": "no-cache"})
        for name, value in _DRF_HEADERS:
            response[name] = value
        response = self._xframe.process_response(request, response)
        response["Content-Length"] = "0"  # CommonMiddleware's
        response = self._security.process_response(request, response)
        return list(response.items())

    def _learn_key(self, hashed: str, secret: str) -> _KnownKey | None:
        """A key's first poll in this process: its environment and prefix (neither ever changes for a key,
        and every poll re-reads its principal, so revocation still takes effect at once)."""
        principal = sdk_principal_cached(secret)
        if principal is None:
            return None
        if len(self._known_keys) >= _MAX_KNOWN_KEYS:
            self._known_keys.clear()
        key = self._known_keys[hashed] = _KnownKey(principal.environment_id, principal.prefix)
        return key

    def _request_passes_django_checks(self, request: WSGIRequest) -> bool:
        """What SecurityMiddleware and CommonMiddleware check before any view runs: a redirect to https
        due, a host not in ALLOWED_HOSTS (400), a disallowed user agent (403)."""
        if self._security.redirect and not request.is_secure():
            return False
        if settings.DISALLOWED_USER_AGENTS:
            return False
        try:
            request.get_host()
        except DisallowedHost:
            return False
        return True


@dataclass(frozen=True, slots=True)
class _KnownKey:
    environment_id: int
    prefix: str


def _read_principal_and_document(hashed: str, key: _KnownKey, window: RateWindow | None
                                 ) -> tuple[SDKPrincipal | None, CachedDocument | None, float | None]:
    """The key's cached principal, its environment's cached document and the request counted against the
    rate limit (the wait if over it): one round trip on Redis."""
    keys = [sdk_key_cache_key(hashed), config_cache_key(key.environment_id)]
    if window is None:
        found = cache.get_many(keys)
        values, wait = [found.get(k) for k in keys], None
    elif hasattr(cache, "get_many_and_count"):
        values, count = cache.get_many_and_count(keys, window.counter_key, window.period + 1)
        wait = window.wait_after(count)
    else:
        found = cache.get_many(keys)
        values, wait = [found.get(k) for k in keys], window.wait_after(count_request(window))
    principal_entry, document_entry = values
    principal = sdk_principal_from_cache_entry(principal_entry)
    document = None if document_entry is None else CachedDocument(*document_entry)
    return principal, document, wait


def _bearer_secret(authorization: str) -> str | None:
    # As DRF's get_authorization_header and SDKKeyAuthentication read it: latin-1 bytes, split on whitespace.
    parts = authorization.encode("latin-1", errors="replace").split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    return parts[1].decode("latin-1")
