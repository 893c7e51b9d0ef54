"""A shadow comparison's database work (services/shadow_store.py) and its provider calls (offline_call): claiming a
sample reads it with its plan and endpoints, storing marks it done, each in one statement on PostgreSQL, with the
lease and exactly-once semantics of the ORM path the other databases use; OpenAI-format calls take the
background-loop fast path, other providers their official SDKs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cutover.providers import ChatRequest, Message
from cutover.simulator import Scenario, SimulatorServer
from migrations_app.models import ShadowComparison, ShadowSample
from migrations_app.services import shadow as shadow_service
from migrations_app.services.shadow import offline_call, shadow_compare, shadow_sample_ingest
from migrations_app.services.shadow_store import claim_and_read, one_statement, store
from tests.support.simulated_plans import SIM_KEY_ENV, sim_endpoint, sim_plan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_calls_unlimited")]

LEASE = timedelta(seconds=120)


@pytest.fixture(scope="module")
def simulator():
    with SimulatorServer(Scenario.from_dict({"seed": 8, "default": {"latency": {"median_ms": 0}}})) as server:
        yield server


@pytest.fixture
def plan(simulator):
    return sim_plan(simulator, baseline_model="store-base", candidate_model="store-cand", key="store-plan")


def a_sample(plan, prompt: str = "Where is my parcel?") -> ShadowSample:
    result = shadow_sample_ingest(environment_id=plan.environment_id, payload={
        "plan": plan.key, "request_id": str(uuid.uuid4()), "segment": "orders",
        "request": {"messages": [{"role": "user", "content": prompt}], "params": {"max_tokens": 50}},
        "baseline": {"text": "It ships today.", "latency_ms": 210.0, "input_tokens": 9, "output_tokens": 4,
                     "model": "store-base"}})
    return ShadowSample.objects.get(pk=result.sample_id)


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements run, less the savepoints a test's own transaction adds around nested atomic blocks."""
    return [q["sql"] for q in queries.captured_queries
            if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))]


def test_claim__takes_the_lease_and_reads_the_sample_with_its_plan_and_endpoints(plan, django_assert_num_queries):
    sample = a_sample(plan)
    now = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        claimed = claim_and_read(sample.pk, now=now, lease_until=now + LEASE)

    assert len(statements(queries)) == (1 if one_statement() else 2)
    assert claimed.pk == sample.pk and claimed.attempts == 1 and claimed.lease_until == now + LEASE
    assert claimed.request == {"messages": [{"role": "user", "content": "Where is my parcel?"}],
                               "params": {"max_tokens": 50}}
    assert claimed.ts == sample.ts and claimed.ts.tzinfo is not None
    assert (claimed.segment, claimed.baseline_text, claimed.baseline_cost) == (
        "orders", "It ships today.", sample.baseline_cost)
    with django_assert_num_queries(0):  # loaded with the claim
        assert claimed.plan.key == plan.key and claimed.plan.shadow_comparator == plan.shadow_comparator
        assert claimed.plan.baseline.spec() == plan.baseline.spec()
        assert claimed.plan.candidate.spec() == plan.candidate.spec()
    stored = ShadowSample.objects.get(pk=sample.pk)
    assert (stored.attempts, stored.lease_until, stored.state) == (1, now + LEASE, "pending")


def test_claim__held_by_another_run__none_and_nothing_changes_until_the_lease_expires(plan):
    sample = a_sample(plan)
    now = timezone.now()
    assert claim_and_read(sample.pk, now=now, lease_until=now + LEASE) is not None

    assert claim_and_read(sample.pk, now=now + timedelta(seconds=60), lease_until=now + 2 * LEASE) is None
    assert ShadowSample.objects.get(pk=sample.pk).attempts == 1

    later = now + LEASE + timedelta(seconds=1)  # the holder died: its lease ran out
    again = claim_and_read(sample.pk, now=later, lease_until=later + LEASE)
    assert again is not None and again.attempts == 2 and again.lease_until == later + LEASE


@pytest.mark.parametrize("state", ["done", "failed"])
def test_claim__finished_sample__none(plan, state):
    sample = a_sample(plan)
    ShadowSample.objects.filter(pk=sample.pk).update(state=state)
    now = timezone.now()

    assert claim_and_read(sample.pk, now=now, lease_until=now + LEASE) is None
    assert ShadowSample.objects.get(pk=sample.pk).attempts == 0


def test_claim__no_such_sample__none(plan):
    now = timezone.now()
    assert claim_and_read(10**12, now=now, lease_until=now + LEASE) is None


def comparison_for(sample: ShadowSample, **fields) -> ShadowComparison:
    return ShadowComparison(**{
        "sample": sample, "plan": sample.plan, "segment": sample.segment, "comparator": "token_f1",
        "candidate_text": "It ships today.", "score": 1.0, "disagree": False, "candidate_cost": 0.001,
        "scores": {"token_f1": {"value": 1.0, "reason": "same"}}} | fields)


def test_store__inserts_the_comparison_and_marks_the_sample_done_together(plan):
    sample = a_sample(plan)
    now = timezone.now()
    claimed = claim_and_read(sample.pk, now=now, lease_until=now + LEASE)
    ShadowSample.objects.filter(pk=sample.pk).update(last_error="an earlier attempt failed")
    comparison = comparison_for(claimed, candidate_latency_ms=180.5)

    with CaptureQueriesContext(connection) as queries:
        store(comparison)

    assert len(statements(queries)) == (1 if one_statement() else 2)
    assert comparison.pk is not None and not comparison._state.adding and comparison.created_at is not None
    stored = ShadowComparison.objects.get(sample=sample)
    assert (stored.pk, stored.candidate_latency_ms, stored.scores, stored.candidate_cost) == (
        comparison.pk, 180.5, {"token_f1": {"value": 1.0, "reason": "same"}}, 0.001)
    assert stored.created_at == comparison.created_at
    sample.refresh_from_db()
    assert (sample.state, sample.lease_until, sample.last_error) == ("done", None, "")


def test_store__the_sample_has_a_comparison_already__integrity_error_and_nothing_changes(plan):
    sample = a_sample(plan)
    now = timezone.now()
    claimed = claim_and_read(sample.pk, now=now, lease_until=now + LEASE)
    store(comparison_for(claimed))
    ShadowSample.objects.filter(pk=sample.pk).update(state="pending", last_error="kept")

    with pytest.raises(IntegrityError):
        store(comparison_for(claimed, candidate_text="a second answer"))

    # The failed statement changed nothing, and the caller's transaction is still usable.
    assert ShadowComparison.objects.filter(sample=sample).count() == 1
    assert ShadowComparison.objects.get(sample=sample).candidate_text == "It ships today."
    assert ShadowSample.objects.filter(pk=sample.pk).values_list("state", "last_error").get() == ("pending", "kept")


def test_shadow_compare_on_postgresql__two_statements_the_claim_with_plan_and_endpoints_and_the_store(plan):
    if not one_statement():
        pytest.skip("the one-statement paths are PostgreSQL's")
    sample = a_sample(plan)

    with CaptureQueriesContext(connection) as queries:
        comparison = shadow_compare(sample_id=sample.pk)

    assert comparison.candidate_ok and ShadowSample.objects.get(pk=sample.pk).state == "done"
    assert len(statements(queries)) == 2


# --- the provider calls -------------------------------------------------------------------------------------

REQUEST = ChatRequest(messages=(Message("user", "What does shipping cost?"),), max_tokens=50, timeout=5)


def test_offline_call__fast_path_and_official_sdk__the_same_outcome(simulator, settings, monkeypatch):
    spec = sim_endpoint(simulator, "store-same").spec()

    settings.CUTOVER_OFFLINE_FAST_PATH = True
    monkeypatch.setattr(shadow_service, "complete", lambda *a, **k: pytest.fail("the SDK path was taken"))
    fast = offline_call(spec, REQUEST).completion
    monkeypatch.undo()
    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")
    settings.CUTOVER_OFFLINE_FAST_PATH = False
    monkeypatch.setattr(shadow_service, "loop_complete", lambda *a, **k: pytest.fail("the fast path was taken"))
    official = offline_call(spec, REQUEST).completion

    assert (fast.text, fast.input_tokens, fast.output_tokens, fast.cost_usd, fast.model, fast.finish_reason) == (
        official.text, official.input_tokens, official.output_tokens, official.cost_usd, official.model,
        official.finish_reason)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "official-sdk"])
def test_offline_call__provider_failure__returned_with_its_kind_after_the_offline_retry(simulator, settings,
                                                                                       fast_path):
    settings.CUTOVER_OFFLINE_FAST_PATH = fast_path
    spec = sim_endpoint(simulator, f"store-fail-{fast_path}").spec()
    simulator.queue_outcomes(spec.model, ["server_error", "server_error", "ok"])

    outcome = offline_call(spec, REQUEST)

    assert not outcome.ok and outcome.error.kind == "server_error"
    assert outcome.error.retries == shadow_service.OFFLINE_RETRY_POLICY.max_retries == 1
    assert simulator.stats()[spec.model] == {"server_error": 2}


def test_anthropic_candidate__compared_through_the_official_sdk(simulator):
    from migrations_app.services.plans import plan_create
    from migrations_app.services.sdk_keys import environment_get_or_create

    plan = plan_create(actor="test", key="store-anthropic",
                       environment=environment_get_or_create(name="prod", actor="test"),
                       baseline=sim_endpoint(simulator, "store-a-base"),
                       candidate=sim_endpoint(simulator, "store-a-cand", provider="anthropic",
                                              base_url=simulator.base_url))
    sample = a_sample(plan)

    comparison = shadow_compare(sample_id=sample.pk)

    assert comparison.candidate_ok and comparison.candidate_text and comparison.candidate_cost > 0
    [sent] = simulator.recorded_requests("store-a-cand")
    assert sent.path.endswith("/messages")  # Anthropic's wire format, sent by its SDK
