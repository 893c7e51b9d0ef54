"""The SDK config poll's fast path: GET /api/v1/sdk/config answered from the cache ahead of Django's
middleware and DRF.

Nearly every request a control plane serves is an SDK or sidecar polling its config with the ETag it
holds; nearly every answer is 304 Not Modified, and after a change every poller of the environment gets the
new document at once. Through the middleware stack and DRF each answer costs several hundred microseconds
of CPU, most of it on machinery a poll does not use. This WSGI wrapper answers a poll with one cache
command (the key's principal, the environment's document, the request counted against the key's rate
limit), the same status, headers and body as SDKConfigView, and never touches the database.

It answers only when everything is plainly in order — a GET of exactly the config path with no query
(a long-poll has one), a Bearer key the cache knows, not revoked, holding config:read, a document in the
cache, a host Django accepts, no https redirect due, an Accept the API serves, the key within its rate
limit — and passes every other request to Django untouched, which answers it as it always has (401, 403,
429, long-polls, cache misses, an unavailable cache). tests/integration/test_config_poll_fast_path.py
holds the two to the same answers.

settings.CUTOVER_CONFIG_FAST_PATH = False sends every request to Django.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse, HttpResponseNotModified
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
                and not environ.get("QUERY_STRING") and settings.CUTOVER_CONFIG_FAST_PATH):
            response = self.answer(environ)
            if response is not None:
                start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
                return [response.content]
        return self.application(environ, start_response)

    def answer(self, environ) -> HttpResponse | None:
        """The config endpoint's answer when this request is a plain poll, else None (Django answers)."""
        secret = _bearer_secret(environ.get("HTTP_AUTHORIZATION", ""))
        if secret is None or environ.get("HTTP_ACCEPT", "") not in _PLAIN_ACCEPTS:
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
        if (principal is None or not principal.has_scope(SDKScope.CONFIG_READ)  # revoked: no scope
                or principal.environment_id != key.environment_id or document is None or wait is not None):
            return None
        # As SDKConfigView answers, then DRF, XFrameOptions-, Common- and SecurityMiddleware add their headers.
        headers = {"ETag": document.etag, "Cache-Control": "no-cache"}
        if document.version == version_from_etag(environ.get("HTTP_IF_NONE_MATCH")):
            response = HttpResponseNotModified(headers=headers)
        else:
            response = HttpResponse(document.body, content_type="application/json", headers=headers)
        for name, value in _DRF_HEADERS:
            response[name] = value
        response = self._xframe.process_response(request, response)
        response["Content-Length"] = str(len(response.content))
        return self._security.process_response(request, response)

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
