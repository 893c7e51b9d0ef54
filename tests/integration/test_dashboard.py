"""The plan dashboard in the admin: who may see it, the JSON it refreshes from (built from real ingested
traffic), and a page that loads nothing from outside the control plane."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from migrations_app import dashboard
from migrations_app.models import HealthRule, ShadowComparison, ShadowSample
from migrations_app.services.alerts import alert_fire_for_plan
from migrations_app.services.ingest import events_ingest, feedback_ingest
from migrations_app.services.plans import plan_act
from tests import factories
from tests.support.streams import batches, feedback, request_events

pytestmark = pytest.mark.django_db

ARM_METRICS = ("error_rate", "latency_p50", "latency_p95", "cost_per_request", "satisfaction",
               "requests_per_minute")


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(factories.make_staff_user("alice", superuser=True))
    return client


def dashboard_url(plan) -> str:
    return reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk])


def data_url(plan) -> str:
    return reverse("admin:migrations_app_migrationplan_dashboard_data", args=[plan.pk])


def ingest_traffic(plan, *, minutes: int = 5, per_minute: int = 60, seed: int = 7) -> int:
    """Both arms' requests over the last `minutes` minutes (the candidate slower and failing more), and
    feedback on some of them. Returns the number of events sent per arm."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for minutes_ago in range(minutes):
        ts = now - timedelta(minutes=minutes_ago, seconds=1)
        events += request_events(plan=plan.key, arm="baseline", count=per_minute, rng=rng, error_rate=0.01,
                                 latency_median_ms=700, latency_p95_ms=1500, ts=ts)
        events += request_events(plan=plan.key, arm="candidate", count=per_minute, rng=rng, error_rate=0.05,
                                 latency_median_ms=900, latency_p95_ms=2500, ts=ts)
    for batch in batches(events, 500):
        events_ingest(environment_id=plan.environment_id, payload={"events": batch})
    for arm, score in (("baseline", 0.8), ("candidate", 0.7)):
        feedback_ingest(environment_id=plan.environment_id,
                        payload={"feedback": feedback(plan=plan.key, arm=arm, count=40, rng=rng, mean_score=score)})
    return minutes * per_minute


@pytest.fixture
def running_plan(plan):
    return plan_act(actor="user:alice", plan_key=plan.key, action="start", reason="go")


# --- access --------------------------------------------------------------------------------------------

def test_dashboard__anonymous__redirected_to_login_page_and_data(running_plan):
    for url in (dashboard_url(running_plan), data_url(running_plan)):
        response = Client().get(url)
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]


def test_dashboard__logged_in_but_not_staff__redirected_to_login_and_no_data(running_plan):
    user = factories.make_staff_user("mallory")
    user.is_staff = False
    user.save()
    client = Client()
    client.force_login(user)
    response = client.get(data_url(running_plan))
    assert response.status_code == 302
    assert b"series" not in response.content


def test_dashboard__staff_without_view_permission__403(running_plan):
    client = Client()
    client.force_login(factories.make_staff_user("bob"))
    assert client.get(dashboard_url(running_plan)).status_code == 403
    assert client.get(data_url(running_plan)).status_code == 403


def test_dashboard__unknown_plan__404(admin_client):
    assert admin_client.get(reverse("admin:migrations_app_migrationplan_dashboard", args=[999999])).status_code == 404


# --- the data endpoint ---------------------------------------------------------------------------------

def test_dashboard_data__ingested_traffic__per_arm_series_with_the_arms_telling_apart(admin_client, running_plan):
    sent = ingest_traffic(running_plan)

    response = admin_client.get(data_url(running_plan))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    series = data["series"]
    assert series["resolution_minutes"] == 1
    assert 5 <= len(series["t"]) <= 7
    assert series["t"] == sorted(series["t"])
    for arm in ("baseline", "candidate"):
        assert series["arms"][arm]["requests"] == sent
        for metric in ARM_METRICS:
            values = series["arms"][arm][metric]
            assert len(values) == len(series["t"])
            assert sum(value is not None for value in values) >= 1, (arm, metric)
        assert sum(value is not None for value in series["arms"][arm]["error_rate"]) == 5

    def mean(arm, metric):
        values = [v for v in series["arms"][arm][metric] if v is not None]
        return sum(values) / len(values)

    assert mean("candidate", "latency_p95") > mean("baseline", "latency_p95") > mean("baseline", "latency_p50")
    assert mean("candidate", "error_rate") > mean("baseline", "error_rate")
    # Baseline tokens cost 30/60 $ per million, the candidate's 3/15: 400 in and 100 out.
    assert mean("baseline", "cost_per_request") == pytest.approx((400 * 30 + 100 * 60) / 1e6)
    assert mean("candidate", "cost_per_request") == pytest.approx((400 * 3 + 100 * 15) / 1e6)
    assert 0 <= mean("candidate", "satisfaction") <= 1
    assert mean("baseline", "requests_per_minute") == pytest.approx(60)


def test_dashboard_data__started_plan__phases_percent_rules_and_audit(admin_client, running_plan):
    data = admin_client.get(data_url(running_plan)).json()

    assert data["plan"]["key"] == running_plan.key
    assert data["plan"]["state"] == "evaluating"
    assert data["plan"]["terminal"] is False
    assert data["refresh_seconds"] == dashboard.REFRESH_SECONDS
    assert [phase["state"] for phase in data["timeline"]["phases"]] == ["draft", "evaluating"]
    assert data["timeline"]["phases"][1]["reason"] == "go"
    percent = data["timeline"]["percent"]
    assert len(percent["t"]) == len(percent["candidate_percent"]) == 3
    assert percent["candidate_percent"][-1] == 0.0
    enabled = HealthRule.objects.filter(plan=running_plan, enabled=True).count()
    assert len(data["rules"]) == enabled > 0
    assert {rule["verdict"] for rule in data["rules"]} <= {"not_enough_data", "inconclusive", "healthy", "breached"}
    assert all(rule["source"] == "computed now" for rule in data["rules"])
    assert [event["action"] for event in data["audit"]][:2] == ["plan.start", "plan.created"]
    assert "state: draft → evaluating" in data["audit"][0]["changes"]
    assert data["alerts"] == []
    assert data["shadow"]["comparisons"] == 0
    assert data["shadow"]["series"]["t"] == []


def test_dashboard_data__rolling_out__percent_steps_up_with_each_advance(admin_client, running_plan):
    for action in ("advance", "advance", "advance"):  # evaluating → shadowing → first step → second step
        plan = plan_act(actor="user:alice", plan_key=running_plan.key, action=action)

    data = admin_client.get(data_url(plan)).json()

    steps = list(plan.steps.order_by("order").values_list("percent", flat=True))
    assert data["plan"]["state"] == "rolling_out"
    assert data["plan"]["step"] == 2
    assert data["timeline"]["percent"]["candidate_percent"] == [0.0, 0.0, 0.0, steps[0], steps[1], steps[1]]


def test_dashboard_data__firing_alert__listed_with_summary(admin_client, running_plan):
    alert_fire_for_plan(plan=running_plan, name="plan.stuck", summary="inconclusive past the deadline")

    alerts = admin_client.get(data_url(running_plan)).json()["alerts"]

    assert len(alerts) == 1
    assert alerts[0]["name"] == "plan.stuck"
    assert "inconclusive past the deadline" in alerts[0]["summary"]


def test_dashboard_data__shadow_comparisons__disagreement_and_noise_floor_per_minute(admin_client, running_plan):
    for index in range(40):
        sample = ShadowSample.objects.create(plan=running_plan, request_id=uuid.uuid4(), request={"messages": []},
                                             ts=timezone.now(), state="done")
        ShadowComparison.objects.create(sample=sample, plan=running_plan, comparator="token_f1", score=0.5,
                                        disagree=index % 4 == 0, noise_score=0.9 if index % 2 else None,
                                        noise_disagree=(index % 10 == 1) if index % 2 else None)

    shadow = admin_client.get(data_url(running_plan)).json()["shadow"]

    assert shadow["comparisons"] == 40
    assert shadow["disagreement"] == pytest.approx(0.25)
    assert shadow["noise_floor"] == pytest.approx(0.2)
    assert shadow["max_disagreement"] == running_plan.shadow_max_disagreement
    assert shadow["verdict"] == "pending"  # fewer than shadow_min_comparisons
    assert len(shadow["series"]["t"]) >= 1
    assert sum(shadow["series"]["disagreement"][i] is not None for i in range(len(shadow["series"]["t"]))) >= 1


def test_dashboard_data__terminal_plan__marked_terminal_so_the_page_stops_polling(admin_client, running_plan):
    plan = plan_act(actor="user:alice", plan_key=running_plan.key, action="abort", reason="not this quarter")

    assert admin_client.get(data_url(plan)).json()["plan"]["terminal"] is True


def test_dashboard_data__bad_or_long_window__default_window_or_coarser_buckets(admin_client, running_plan):
    ingest_traffic(running_plan, minutes=2, per_minute=10)

    assert admin_client.get(data_url(running_plan) + "?hours=nonsense").json()["window"]["hours"] == 6
    assert admin_client.get(data_url(running_plan) + "?hours=100000").json()["window"]["hours"] == 24 * 14
    # A long span is summed into buckets so no chart gets more than MAX_POINTS points.
    assert dashboard.resolution_minutes(timedelta(days=7)) == 28
    assert dashboard.resolution_minutes(timedelta(minutes=30)) == 1


# --- the page ------------------------------------------------------------------------------------------

class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])
        if tag in ("img", "iframe") and attributes.get("src"):
            self.urls.append(attributes["src"])


def test_dashboard_page__every_script_and_stylesheet_is_a_local_static_file(admin_client, running_plan):
    response = admin_client.get(dashboard_url(running_plan))

    assert response.status_code == 200
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert any(url.endswith("uPlot.iife.min.js") for url in parser.urls)
    assert any(url.endswith("dashboard.js") for url in parser.urls)
    for url in parser.urls:
        assert url.startswith("/static/"), url
    for cdn in ("cdn.", "unpkg", "jsdelivr", "googleapis", "cloudflare", "//"):
        assert all(cdn not in url for url in parser.urls)
    # The first data is embedded, so the page draws before its first poll.
    assert 'id="cd-data"' in html
    assert f'data-url="{data_url(running_plan)}?hours=6"' in html
    for chart in ("candidate_percent", *ARM_METRICS, "shadow"):
        assert f'id="chart-{chart}"' in html


def test_dashboard_page__vendored_chart_library_and_its_licence_are_served(admin_client):
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE"):
        assert finders.find(f"migrations_app/vendor/uplot/{name}"), name
    response = admin_client.get("/static/migrations_app/vendor/uplot/uPlot.iife.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"uPlot" in body


def test_plan_change_page_and_changelist__link_to_the_dashboard(admin_client, running_plan):
    change = admin_client.get(reverse("admin:migrations_app_migrationplan_change", args=[running_plan.pk]))
    listing = admin_client.get(reverse("admin:migrations_app_migrationplan_changelist"))

    assert f'href="{dashboard_url(running_plan)}"' in change.content.decode()
    assert f'href="{dashboard_url(running_plan)}"' in listing.content.decode()
