"""Security headers, cookies, CSRF on session-authenticated API writes, the production settings passing
`manage.py check --deploy --fail-level WARNING`, and webhook signatures a receiver checks with cutover alone."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from migrations_app.models import MigrationPlan
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    return env | {"DJANGO_SETTINGS_MODULE": "controlplane.settings", "SECRET_KEY": secrets.token_urlsafe(50),
                  "DEBUG": "0", "ALLOWED_HOSTS": "cutover.example.com", "CUTOVER_VAR_DIR": str(tmp_path / "var")}


def test_check_deploy__production_settings__passes_at_warning_level(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings__https_hsts_and_secure_cookies(tmp_path):
    script = """
import json, django
django.setup()
from django.conf import settings as s
from django.test import Client
response = Client(SERVER_NAME="cutover.example.com").get("/admin/login/", secure=True)
plain = Client(SERVER_NAME="cutover.example.com").get("/admin/login/")
print(json.dumps({"hsts": response.get("Strict-Transport-Security"), "redirect": plain.status_code,
                  "location": plain.get("Location"),
                  "settings": {n: getattr(s, n) for n in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                               "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "DEBUG")}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=production_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["hsts"].startswith("max-age=31536000") and "includeSubDomains" in seen["hsts"]
    assert seen["redirect"] == 301 and seen["location"].startswith("https://")
    assert seen["settings"] == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
                                "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31536000, "DEBUG": False}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/plans/", "/healthz"])
def test_security_headers__every_response(path):
    response = Client().get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_content_security_policy__on_admin_pages__scripts_from_this_origin_only(plan):
    client = Client()
    client.force_login(factories.make_staff_user("root", superuser=True))
    pages = [(Client(), reverse("admin:login"))] + [(client, url) for url in (
        reverse("admin:index"), reverse("admin:migrations_app_migrationplan_change", args=[plan.pk]),
        reverse("admin:migrations_app_migrationplan_add"),
        reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk]))]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        # No inline script the policy would block (a JSON data island is not executed).
        body = response.content.decode()
        for chunk in body.split("<script")[1:]:
            tag = chunk.split(">", 1)[0]
            assert "src=" in tag or 'type="application/json"' in tag, tag


@pytest.mark.django_db
def test_content_security_policy__swagger_ui_exempt_and_still_served():
    response = Client().get("/api/docs/")
    assert response.status_code == 200 and "Content-Security-Policy" not in response


def test_cookies__session_and_csrf_settings():
    assert settings.SESSION_COOKIE_HTTPONLY and settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_HTTPONLY and settings.CSRF_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600


@pytest.mark.django_db
def test_admin_login__session_cookie_httponly_samesite_and_short_lived():
    factories.make_staff_user("alice", superuser=True)
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("admin:login"))
    token = page.cookies["csrftoken"].value
    response = client.post(reverse("admin:login"), {"username": "alice", "password": "correct horse battery staple",
                                                    "csrfmiddlewaretoken": token, "next": "/admin/"})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE


@pytest.mark.django_db
def test_admin_login__without_csrf_token__403():
    factories.make_staff_user("alice", superuser=True)
    response = Client(enforce_csrf_checks=True).post(reverse("admin:login"), {
        "username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_session_api_write__without_csrf_token__403_and_nothing_created__with_it__201():
    factories.make_endpoint("gpt-4-prod")
    factories.make_endpoint("claude-sonnet", provider="anthropic", api_key_env="ANTHROPIC_API_KEY")
    factories.make_environment("prod")
    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.make_staff_user("oscar", role="cutover-operator"))
    body = json.dumps({"key": "csrf-plan", "environment": "prod", "baseline": "gpt-4-prod",
                       "candidate": "claude-sonnet"})
    refused = client.post("/api/v1/plans/", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not MigrationPlan.objects.exists()
    token = client.get(reverse("admin:index")).cookies["csrftoken"].value
    accepted = client.post("/api/v1/plans/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201 and MigrationPlan.objects.filter(key="csrf-plan").exists()


def test_webhook_signatures__a_receiver_verifies_with_cutover_webhooks_alone():
    """The signing scheme and its tests live in cutover/webhooks.py and tests/unit/test_webhooks.py; deliveries
    from the real notification code are verified in tests/integration/test_notifications.py and in
    test_planted_secrets.py. Here: a receiver needs nothing but the SDK module (no Django)."""
    script = """
import sys, time
from cutover.webhooks import SIGNATURE_HEADER, sign, verify
body = b'{"event": "trigger"}'
secret = "whsec_receiver_side_secret"
header = sign(body, secret, int(time.time()))
assert verify(body, header, secret) and not verify(body + b" ", header, secret)
assert SIGNATURE_HEADER == "X-Cutover-Signature"
assert not any(name == "django" or name.startswith("django.") for name in sys.modules), "imports Django"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
