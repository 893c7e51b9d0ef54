"""An ops engineer's path through the admin in a real browser: log in, create a plan through the add form,
start it and move it into the rollout with the lifecycle buttons, then watch the dashboard draw the traffic the
plan receives and pick up new traffic on its own. Screenshots go to the artifacts directory."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from migrations_app.models import MigrationPlan, ShadowComparison, ShadowSample
from migrations_app.services.health import plan_health_check
from migrations_app.services.ingest import events_ingest, feedback_ingest
from tests import factories
from tests.support.streams import batches, feedback, request_events

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

PASSWORD = "correct horse battery staple"
ARM_CHARTS = ("error_rate", "latency_p50", "latency_p95", "cost_per_request", "satisfaction", "requests_per_minute")

# Per chart: the number of drawn (non-empty) points of each series after the x values.
POINTS_JS = """() => Object.fromEntries(Object.entries(window.cutoverDashboard.charts).map(
    ([name, chart]) => [name, chart.data.slice(1).map(series => series.filter(v => v != null).length)]))"""

# Pixels of the candidate's colour on a chart's canvas: the series was drawn, not just the axes.
CANDIDATE_PIXELS_JS = """(name) => {
    const canvas = document.querySelector('#chart-' + name + ' canvas');
    const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - 224) < 30 && Math.abs(data[i + 1] - 112) < 30 && data[i + 2] < 60) count++;
    }
    return count;
}"""


@pytest.fixture
def ops_setup(transactional_db):
    """What exists before the engineer arrives: an environment, two endpoints and a superuser."""
    factories.make_staff_user("alice", superuser=True)
    environment = factories.make_environment("prod")
    baseline = factories.make_endpoint("gpt-4-prod", model="gpt-4")
    candidate = factories.make_endpoint("claude-sonnet", provider="anthropic", model="claude-3-5-sonnet",
                                        api_key_env="ANTHROPIC_API_KEY", input_price_per_mtok=3,
                                        output_price_per_mtok=15)
    return environment, baseline, candidate


def send_traffic(plan: MigrationPlan, *, minutes: int, per_minute: int, seed: int, ending_ago: int = 0) -> None:
    """Both arms' requests (the candidate a little slower and failing more) and feedback, through ingest."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events, scores = [], []
    for minutes_ago in range(ending_ago, ending_ago + minutes):
        ts = now - timedelta(minutes=minutes_ago, seconds=1)
        drift = 1 + 0.15 * rng.random()
        events += request_events(plan=plan.key, arm="baseline", count=per_minute, rng=rng, error_rate=0.01,
                                 latency_median_ms=700 * drift, latency_p95_ms=1600 * drift, ts=ts)
        events += request_events(plan=plan.key, arm="candidate", count=per_minute, rng=rng, error_rate=0.03,
                                 latency_median_ms=820 * drift, latency_p95_ms=2100 * drift, ts=ts)
        for arm, score in (("baseline", 0.82), ("candidate", 0.78)):
            scores.extend(item | {"ts": ts.isoformat()}
                          for item in feedback(plan=plan.key, arm=arm, count=8, rng=rng, mean_score=score))
    for batch in batches(events, 1000):
        events_ingest(environment_id=plan.environment_id, payload={"events": batch})
    feedback_ingest(environment_id=plan.environment_id, payload={"feedback": scores})


def record_shadow_comparisons(plan: MigrationPlan, *, minutes: int, per_minute: int, seed: int) -> None:
    """Scored shadow comparisons spread over the last minutes (test data: the comparison worker and the
    simulator are exercised in tests/integration/test_shadow.py)."""
    rng = random.Random(seed)
    now = timezone.now()
    for minutes_ago in range(minutes):
        ids = []
        for _ in range(per_minute):
            sample = ShadowSample.objects.create(plan=plan, request_id=uuid.uuid4(), request={"messages": []},
                                                 ts=now, state="done")
            rerun = rng.random() < 0.5
            ids.append(ShadowComparison.objects.create(
                sample=sample, plan=plan, comparator="token_f1", score=rng.random(), disagree=rng.random() < 0.12,
                noise_score=0.9 if rerun else None, noise_disagree=(rng.random() < 0.08) if rerun else None).pk)
        ShadowComparison.objects.filter(pk__in=ids).update(created_at=now - timedelta(minutes=minutes_ago))


def click_lifecycle(page, action: str) -> None:
    page.click(f"a.lifecycle-action[data-action='{action}']")
    page.fill("textarea[name='reason'], input[name='reason']", f"browser test: {action}")
    page.click("#content-main input[type='submit']")
    page.wait_for_selector(".messagelist .success")


def test_dashboard__plan_created_and_started_in_the_admin__charts_draw_its_traffic_and_refresh_live(
        live_server, ops_setup, page, page_errors, screenshots_dir):
    environment, baseline, candidate = ops_setup

    # Log in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("input[type='submit']")
    page.wait_for_selector("#site-name")

    # Create a plan through the add form (its steps and rules come prefilled with the playbook's defaults).
    page.goto(f"{live_server.url}/admin/migrations_app/migrationplan/add/")
    page.fill("#id_key", "browser-bot")
    page.fill("#id_description", "created by the browser test")
    page.select_option("#id_environment", str(environment.pk))
    page.select_option("#id_baseline", str(baseline.pk))
    page.select_option("#id_candidate", str(candidate.pk))
    page.click("input[name='_continue']")
    page.wait_for_selector(".messagelist .success")
    plan = MigrationPlan.objects.get(key="browser-bot")
    assert plan.state == "draft"
    assert plan.steps.count() > 0 and plan.rules.count() > 0

    # Start it, then advance through shadow into the first rollout step, with the lifecycle buttons.
    click_lifecycle(page, "start")
    click_lifecycle(page, "advance")
    click_lifecycle(page, "advance")
    plan.refresh_from_db()
    assert plan.state == "rolling_out" and plan.candidate_percent > 0

    # Traffic arrives (through the ingest service, as the SDK's POSTs do), and the health checker looks at it.
    record_shadow_comparisons(plan, minutes=8, per_minute=15, seed=3)
    send_traffic(plan, minutes=12, per_minute=40, seed=1, ending_ago=1)
    # The health rules judge the current step only: traffic since the plan entered it.
    send_traffic(plan, minutes=1, per_minute=250, seed=4)
    plan_health_check(plan_id=plan.pk, now=timezone.now())

    # The dashboard is linked from the plan's page.
    page.goto(f"{live_server.url}/admin/migrations_app/migrationplan/{plan.pk}/change/")
    page.screenshot(path=str(screenshots_dir / "plan-change-page.png"), full_page=True)
    page.click("#plan-dashboard-link")
    page.wait_for_url(f"**/migrationplan/{plan.pk}/dashboard/")
    page.wait_for_function("() => window.cutoverDashboard && window.cutoverDashboard.status.fetches >= 1",
                           timeout=20_000)

    points = page.evaluate(POINTS_JS)
    for chart in ARM_CHARTS:
        baseline_points, candidate_points = points[chart]
        assert baseline_points >= 10 and candidate_points >= 10, (chart, points[chart])
    assert points["candidate_percent"][0] >= 3  # draft → evaluating → shadowing → rolling out, then now
    assert points["shadow"][0] >= 5 and points["shadow"][1] >= 5
    assert page.locator(".cd-chart canvas").count() == len(ARM_CHARTS) + 2
    for chart in ("error_rate", "latency_p95", "candidate_percent"):
        assert page.evaluate(CANDIDATE_PIXELS_JS, chart) > 50, f"no candidate series drawn on {chart}"
    assert page.locator("#cd-state").inner_text().lower() == "rolling out"
    assert page.locator("#cd-rules tbody tr").count() == plan.rules.filter(enabled=True).count()
    assert page.locator(".cd-phase").count() == 4
    assert "plan.advance" in page.locator("#cd-audit").inner_text()
    assert "live" in page.locator("#cd-live").inner_text()
    page.screenshot(path=str(screenshots_dir / "plan-dashboard.png"), full_page=True)

    # New traffic shows up without a reload.
    before = page.evaluate("() => window.cutoverDashboard.data().series.arms.candidate.requests")
    fetches = page.evaluate("() => window.cutoverDashboard.status.fetches")
    send_traffic(plan, minutes=1, per_minute=25, seed=2)
    page.wait_for_function(f"() => window.cutoverDashboard.status.fetches > {fetches}", timeout=20_000)
    page.wait_for_function(
        f"() => window.cutoverDashboard.data().series.arms.candidate.requests >= {before + 25}", timeout=20_000)
    page.screenshot(path=str(screenshots_dir / "plan-dashboard-refreshed.png"), full_page=True)

    assert page.evaluate("() => window.cutoverDashboard.status.failures") == 0
    assert page_errors == []
