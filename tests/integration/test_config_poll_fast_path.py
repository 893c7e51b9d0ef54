"""The config poll's fast path (migrations_app/api/config_poll.py): a plain poll answered from the cache
ahead of Django, with exactly the answer Django gives, and every other request left to Django."""

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings

from migrations_app.api import config_poll
from migrations_app.api.config_poll import ConfigPollFastPath, _bearer_secret, version_from_etag
from migrations_app.api.throttling import rate_window
from migrations_app.models import SDKKey
from migrations_app.selectors import sdk_principal_cached
from migrations_app.services.plans import plan_act
from migrations_app.services.sdk_keys import sdk_key_revoke
from tests import factories

CONFIG = "/api/v1/sdk/config"


class RecordingApp:
    """Django's WSGI application, noting each request it answers."""

    def __init__(self) -> None:
        self.django = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


def call(application, environ: dict) -> tuple[int, dict[str, str], bytes]:
    answered: dict = {}

    def start_response(status, headers, exc_info=None):
        answered["status"], answered["headers"] = int(status.split()[0]), headers

    chunks = application(dict(environ), start_response)
    body = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return answered["status"], {name.lower(): value for name, value in answered["headers"]}, body


def poll(secret: str | None, etag: str | None = None, *, method: str = "GET", query: str = "", **headers) -> dict:
    if secret is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {secret}")
    if etag is not None:
        headers["HTTP_IF_NONE_MATCH"] = etag
    return RequestFactory().generic(method, CONFIG + query, **headers).environ


@pytest.fixture
def live_plan(transactional_db):
    plan = factories.make_plan()
    plan_act(actor="test", plan_key=plan.key, action="start")
    return plan


@pytest.fixture
def apps():
    django = RecordingApp()
    return django, ConfigPollFastPath(django)


def current_etag(django, secret: str) -> str:
    status, headers, _ = call(django, poll(secret))
    assert status == 200
    return headers["etag"]


def _answered_cases():
    return {
        "the current version (304)": lambda etag: etag,
        "no If-None-Match (200)": lambda etag: None,
        "an older version (200)": lambda etag: '"1"',
        "an ETag that is not a version (200)": lambda etag: '"abc"',
        "a weak ETag of the current version (304)": lambda etag: f"W/{etag}",
        "a list starting with the current version (304)": lambda etag: f'{etag}, "1"',
        "the current version unquoted (304)": lambda etag: etag.strip('"'),
    }


@pytest.mark.parametrize("case", list(_answered_cases()))
def test_plain_poll__answered_without_django__the_same_answer_django_gives(live_plan, apps, case):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    environ = poll(secret, _answered_cases()[case](etag))
    by_django = call(django, environ)
    calls = django.calls
    by_fast_path = call(fast, environ)
    assert django.calls == calls, "Django answered it"
    assert by_fast_path == by_django
    assert by_fast_path[0] == int(case[-4:-1]) and by_fast_path[1]["etag"] == etag
    assert by_fast_path[2] == b"" if by_fast_path[0] == 304 else by_fast_path[2].startswith(b"{")


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), SECURE_SSL_REDIRECT=True,
                   SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_HSTS_PRELOAD=True)
def test_poll_over_https__same_security_headers_as_django_hsts_included(live_plan):
    django = RecordingApp()
    fast = ConfigPollFastPath(django)
    secret = factories.make_sdk_key("prod")
    https = {"HTTP_X_FORWARDED_PROTO": "https"}
    status, headers, _ = call(django, poll(secret, **https))
    calls = django.calls
    answer = call(fast, poll(secret, headers["etag"], **https))
    assert django.calls == calls
    assert answer == call(django, poll(secret, headers["etag"], **https))
    assert answer[1]["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    # Plain http is redirected by Django, as before.
    assert call(fast, poll(secret, headers["etag"]))[0] == 301


def _fall_through_cases():
    return {
        "a long-poll": lambda secret, etag: poll(secret, etag, query="?wait=0"),
        "a bad query": lambda secret, etag: poll(secret, etag, query="?wait=soon"),
        "HEAD": lambda secret, etag: poll(secret, etag, method="HEAD"),
        "POST": lambda secret, etag: poll(secret, etag, method="POST"),
        "an unknown key": lambda secret, etag: poll("cut_not-a-real-key", etag),
        "no credentials": lambda secret, etag: poll(None, etag),
        "a staff token instead of a key": lambda secret, etag: poll(None, etag, HTTP_AUTHORIZATION=f"Token {secret}"),
        "three words of authorization": lambda secret, etag: poll(None, etag, HTTP_AUTHORIZATION=f"Bearer {secret} x"),
        "a host Django refuses": lambda secret, etag: poll(secret, etag, HTTP_HOST="evil.example"),
        "an Accept the API does not serve": lambda secret, etag: poll(secret, etag, HTTP_ACCEPT="image/png"),
    }


@pytest.mark.parametrize("case", list(_fall_through_cases()))
def test_anything_but_a_plain_poll__left_to_django__same_answer(live_plan, apps, case):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    environ = _fall_through_cases()[case](secret, etag)
    expected = call(django, environ)
    calls = django.calls
    answer = call(fast, environ)
    assert django.calls == calls + 1, "the fast path answered it"
    assert answer[0] == expected[0] and answer[1].keys() == expected[1].keys()
    if case != "a long-poll":
        assert answer == expected


def test_events_only_key__403_from_django(live_plan, apps):
    django, fast = apps
    secret, reader = factories.make_sdk_key("prod", scopes=["events:write"]), factories.make_sdk_key("prod")
    etag = current_etag(django, reader)
    assert call(django, poll(secret))[0] == 403  # Django has cached the key by now
    status, _, body = call(fast, poll(secret, etag))
    assert status == 403 and b"config:read" in body


def test_revoked_key__refused_on_the_very_next_poll(live_plan, apps):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    assert call(fast, poll(secret, etag))[0] == 304
    sdk_key_revoke(actor="test", key=SDKKey.objects.get())
    status, _, body = call(fast, poll(secret, etag))
    assert status == 401 and b"revoked" in body


def test_config_change__next_poll_gets_the_new_document_without_django(live_plan, apps):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    assert call(fast, poll(secret, etag))[0] == 304
    plan_act(actor="test", plan_key=live_plan.key, action="pause")
    calls = django.calls
    status, headers, body = call(fast, poll(secret, etag))
    assert django.calls == calls
    assert status == 200 and headers["etag"] != etag and b'"paused"' in body
    assert call(fast, poll(secret, headers["etag"]))[0] == 304


def test_cache_emptied__django_answers_and_refills_it__then_the_fast_path_again(live_plan, apps):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    cache.clear()
    calls = django.calls
    assert call(fast, poll(secret, etag))[0] == 304
    assert django.calls == calls + 1
    assert call(fast, poll(secret, etag))[0] == 304
    assert django.calls == calls + 1


def test_cache_unavailable__django_answers(live_plan, apps, monkeypatch):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)

    def unavailable(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(config_poll, "_read_principal_and_document", unavailable)
    calls = django.calls
    assert call(fast, poll(secret, etag))[0] == 304
    assert django.calls == calls + 1


@override_settings(CUTOVER_SDK_RATE_LIMITS={"config": "3/min"})
def test_rate_limit__fast_path_polls_count__each_request_counted_once__429_from_django(live_plan, apps):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)  # 1
    answers = [call(fast, poll(secret, etag)) for _ in range(4)]  # 2, 3, then 4 and 5 over the limit
    assert [status for status, _, _ in answers] == [304, 304, 429, 429]
    assert 1 <= int(answers[2][1]["retry-after"]) <= 60
    prefix = sdk_principal_cached(secret).prefix
    assert cache.get(rate_window(prefix, "config").counter_key) == 5


@override_settings(CUTOVER_CONFIG_FAST_PATH=False)
def test_fast_path_off__django_answers_every_poll(live_plan, apps):
    django, fast = apps
    secret = factories.make_sdk_key("prod")
    etag = current_etag(django, secret)
    calls = django.calls
    assert call(fast, poll(secret, etag))[0] == 304
    assert django.calls == calls + 1


def test_production_wsgi_application__has_the_fast_path():
    from controlplane.wsgi import application

    assert isinstance(application, ConfigPollFastPath)


@pytest.mark.parametrize(("header", "version"), [('"42"', 42), ('W/"42"', 42), ('"42", "41"', 42), ("42", 42),
                                                 ('"x"', None), ("", None), (None, None), ('"-1"', None)])
def test_version_from_etag(header, version):
    assert version_from_etag(header) == version


@pytest.mark.parametrize(("authorization", "secret"), [
    ("Bearer cut_abc", "cut_abc"), ("bearer  cut_abc ", "cut_abc"), ("Token cut_abc", None), ("Bearer", None),
    ("Bearer a b", None), ("", None), ("Bearer caf\xe9", "caf\xe9"),
])
def test_bearer_secret__read_as_drf_reads_it(authorization, secret):
    assert _bearer_secret(authorization) == secret
