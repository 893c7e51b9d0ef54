"""The LLM judge as a plan's shadow comparator (and an evaluation run's), against the simulator playing the judge
over HTTP through the official SDKs: the verdict and its reason stored with the comparison, the order of the two
answers drawn at random per comparison and applied, the judge's failures kept as neutral unparsed scores, its calls
taken from its provider's bucket and counted as shadow spend; and the validation of the judge settings in the API,
the admin and plan files."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from cutover.simulator import Scenario, SimulatorServer
from migrations_app import selectors
from migrations_app.models import EvaluationResult, MigrationPlan, ShadowComparison, ShadowSample
from migrations_app.services.evaluation import (
    SettingsInvalid,
    dataset_import,
    evaluation_run_create,
    evaluation_run_execute,
)
from migrations_app.services.rate_limit import rate_limit_reset
from migrations_app.services.shadow import shadow_compare, shadow_sample_ingest
from tests import factories
from tests.support.simulated_plans import live_baseline_answer, sim_endpoint, sim_plan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_calls_unlimited")]


@pytest.fixture(scope="module")
def simulator():
    with SimulatorServer(Scenario.from_dict({"seed": 4, "default": {"latency": {"median_ms": 0}}})) as server:
        yield server


def answers(simulator, name: str, template: str) -> str:
    simulator.update_script(name, {"answer": {"kind": "template", "template": template}})
    return name


def judge_endpoint(simulator, name: str, *, prefers: str = "", otherwise: str = "tie", provider: str = "openai",
                   **script):
    """A pinned judge model on the simulator: the response containing `prefers` wins, else `otherwise`."""
    model = f"{name}-2024-08-06"
    simulator.update_script(model, {"answer": {"kind": "judge", "judge_prefers": prefers,
                                               "judge_otherwise": otherwise}, **script})
    base_url = simulator.openai_base_url if provider == "openai" else simulator.base_url
    return sim_endpoint(simulator, model, provider=provider, base_url=base_url, input_price_per_mtok=2.5,
                        output_price_per_mtok=10)


def judge_plan(simulator, key: str, *, baseline: str, candidate: str, judge, **quality) -> MigrationPlan:
    base = answers(simulator, f"{key}-base", baseline)
    cand = answers(simulator, f"{key}-cand", candidate)
    quality = {"noise_floor_fraction": 0.0} | quality  # no baseline re-asks unless a test wants them
    return sim_plan(simulator, baseline_model=base, candidate_model=cand, key=key, shadow_comparator="judge",
                    judge_endpoint=judge, shadow_agreement_threshold=0.5, **quality)


def compare(plan: MigrationPlan, prompt: str) -> ShadowComparison:
    payload = {"plan": plan.key, "request_id": str(uuid.uuid4()),
               "request": {"messages": [{"role": "user", "content": prompt}], "params": {"max_tokens": 200}},
               "baseline": live_baseline_answer(plan, prompt)}
    return shadow_compare(sample_id=shadow_sample_ingest(environment_id=plan.environment_id,
                                                         payload=payload).sample_id)


def judge_prompts(simulator, judge) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in simulator.recorded_requests(judge.model)]


# --- shadow comparisons -----------------------------------------------------------------------------------------


def test_shadow_judge__candidate_worse__scored_low_with_reason(simulator):
    judge = judge_endpoint(simulator, "judge-worse", prefers="approved")
    plan = judge_plan(simulator, "judge-worse", baseline="Your refund was approved: {last_user}",
                      candidate="Sorry, I cannot say: {last_user}", judge=judge)

    comparison = compare(plan, "Where is my refund for order 7?")

    assert comparison.comparator == "judge" and comparison.score == 0.0 and comparison.disagree
    verdict = comparison.scores["judge"]
    assert verdict["value"] == 0.0
    assert verdict["reason"].startswith(f"judge {judge.model}: candidate worse.")
    assert "contains 'approved'" in verdict["reason"]
    assert verdict["details"]["judge_model"] == judge.model and verdict["details"]["parsed"] is True
    assert {"token_f1", "normalised"} <= set(comparison.scores)  # the cheap comparators are kept beside it
    assert comparison.judge_cost > 0 and comparison.candidate_text.startswith("Sorry")
    [prompt] = judge_prompts(simulator, judge)
    assert "Where is my refund for order 7?" in prompt  # the judge reads the user's request


def test_shadow_judge__candidate_better__scored_high_and_agrees(simulator):
    judge = judge_endpoint(simulator, "judge-better", prefers="tracking number")
    plan = judge_plan(simulator, "judge-better", baseline="It is on its way.",
                      candidate="It is on its way; the tracking number is in your email.", judge=judge)

    comparison = compare(plan, "Where is my parcel?")

    assert comparison.score == 1.0 and not comparison.disagree
    assert "candidate better" in comparison.scores["judge"]["reason"]


def test_shadow_judge__tie__scored_half_and_agrees_at_the_judge_threshold(simulator):
    judge = judge_endpoint(simulator, "judge-tie")  # prefers nothing: every comparison a tie
    plan = judge_plan(simulator, "judge-tie", baseline="Yes.", candidate="Yes, it is.", judge=judge)

    comparison = compare(plan, "Is the shop open?")

    assert comparison.score == 0.5 and not comparison.disagree
    assert "as good" in comparison.scores["judge"]["reason"]


def test_shadow_judge__order_of_the_answers_drawn_per_comparison__and_applied(simulator):
    judge = judge_endpoint(simulator, "judge-order", prefers="approved")
    plan = judge_plan(simulator, "judge-order", baseline="Refund approved ({last_user}).",
                      candidate="Please wait ({last_user}).", judge=judge)

    comparisons = [compare(plan, f"Refund for order {i}?") for i in range(40)]

    shown_first = [c.scores["judge"]["details"]["candidate_first"] == [True] for c in comparisons]
    assert 5 < sum(shown_first) < 35  # both orders, drawn at random
    # The worse candidate loses in either position: A and B were mapped back to the arms correctly ...
    assert all(c.score == 0.0 for c in comparisons)
    # ... and the order recorded is the order the judge was shown.
    prompts = judge_prompts(simulator, judge)
    for comparison, first in zip(comparisons, shown_first, strict=True):
        [prompt] = [p for p in prompts if comparison.sample.request["messages"][0]["content"] in p]
        response_a = prompt.split("[Response A]")[1].split("[End of response A]")[0]
        assert ("Please wait" in response_a) == first


def test_shadow_judge__judge_biased_towards_position_a__bias_cancels_over_random_orders(simulator):
    judge = judge_endpoint(simulator, "judge-biased", otherwise="A")  # always prefers the first answer shown
    plan = judge_plan(simulator, "judge-biased", baseline="Answer one.", candidate="Answer two.", judge=judge)

    comparisons = [compare(plan, f"Question {i}?") for i in range(60)]

    for comparison in comparisons:
        candidate_first = comparison.scores["judge"]["details"]["candidate_first"] == [True]
        assert comparison.score == (1.0 if candidate_first else 0.0)
    mean = sum(c.score for c in comparisons) / len(comparisons)
    assert 0.25 < mean < 0.75


def test_shadow_judge__judge_failing__comparison_kept_with_neutral_unparsed_score_and_the_error(simulator):
    judge = judge_endpoint(simulator, "judge-down", errors={"server_error": 1.0})
    plan = judge_plan(simulator, "judge-down", baseline="Fine.", candidate="Fine too.", judge=judge)

    comparison = compare(plan, "How are you?")

    assert ShadowSample.objects.get(pk=comparison.sample_id).state == "done"
    assert comparison.candidate_ok and comparison.candidate_text == "Fine too."
    assert comparison.score == 0.5 and not comparison.disagree
    verdict = comparison.scores["judge"]
    assert verdict["details"]["parsed"] is False and verdict["details"]["error"] == "server_error"
    assert "no verdict" in verdict["reason"]


def test_shadow_judge__unparseable_verdict__neutral_score_marked_unparsed(simulator):
    model = "judge-prose-2024-08-06"
    simulator.update_script(model, {"answer": {"kind": "deterministic"}})  # prose, no verdict
    judge = sim_endpoint(simulator, model)
    plan = judge_plan(simulator, "judge-prose", baseline="A.", candidate="B.", judge=judge)

    comparison = compare(plan, "Which?")

    assert comparison.score == 0.5 and comparison.scores["judge"]["details"]["parsed"] is False
    assert "unparseable" in comparison.scores["judge"]["reason"]


def test_shadow_judge__its_provider_bucket_empty__comparison_kept_with_the_judge_rate_limited(simulator, settings):
    judge = judge_endpoint(simulator, "judge-throttled", prefers="approved", provider="anthropic")
    plan = judge_plan(simulator, "judge-throttled", baseline="Approved.", candidate="Denied.", judge=judge)
    # One anthropic token, refilled every 1000 s; the arms (openai) are unlimited.
    settings.CUTOVER_OFFLINE_RATE_LIMITS = {"default": 0, "anthropic": 0.001}
    settings.CUTOVER_OFFLINE_MAX_WAIT_SECONDS = 0.0
    rate_limit_reset()
    if settings.REDIS_URL:  # the bucket is shared in Redis: start it full
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete("cutover:ratelimit:anthropic")

    judged, throttled = compare(plan, "Refund?"), compare(plan, "Refund again?")

    assert judged.score == 0.0 and judged.scores["judge"]["details"]["parsed"] is True
    assert throttled.score == 0.5 and throttled.candidate_text == "Denied."
    assert throttled.scores["judge"]["details"]["error"] == "rate_limited_locally"
    assert len(simulator.recorded_requests(judge.model)) == 1


def test_shadow_judge__noise_floor_sample__rerun_judged_too_and_every_judge_call_counted_as_shadow_spend(
        simulator, ops_client):
    judge = judge_endpoint(simulator, "judge-noise", prefers="approved")
    plan = judge_plan(simulator, "judge-noise", baseline="Approved: {last_user}", candidate="No: {last_user}",
                      judge=judge, noise_floor_fraction=1.0)

    comparison = compare(plan, "Refund for order 9?")

    assert comparison.noise_score == 0.5 and not comparison.noise_disagree  # the baseline ties with itself
    assert len(simulator.recorded_requests(judge.model)) == 2
    summary = selectors.shadow_summary(plan=plan)
    assert summary.shadow_cost == pytest.approx(comparison.candidate_cost + comparison.rerun_cost
                                                + comparison.judge_cost)
    row = ops_client.get(f"/api/v1/plans/{plan.key}/comparisons/").json()["results"][0]
    assert row["judge_cost"] == comparison.judge_cost > 0 and row["scores"]["judge"]["value"] == 0.0


def test_shadow_judge__plan_rubric__sent_to_the_judge(simulator):
    judge = judge_endpoint(simulator, "judge-rubric")
    plan = judge_plan(simulator, "judge-rubric", baseline="x", candidate="y", judge=judge,
                      judge_rubric="Prefer the answer that quotes the order number.")
    compare(plan, "Order 12?")
    [request] = simulator.recorded_requests(judge.model)
    system = next(m["content"] for m in request.body["messages"] if m["role"] == "system")
    assert "Rubric: Prefer the answer that quotes the order number." in system
    assert request.body["temperature"] == 0.0


# --- evaluation runs ------------------------------------------------------------------------------------------


def test_evaluation_judge__accuracy_and_agreement_judged__judge_spend_in_the_run_cost(simulator):
    judge = judge_endpoint(simulator, "judge-eval", prefers="shipped")
    base = answers(simulator, "judge-eval-base", "Status: shipped ({last_user})")
    simulator.update_script("judge-eval-cand", {"answer": {"kind": "mirror", "mirror_model": base,
                                                           "alter_fraction": 0.5, "alter_text": "I do not know."}})
    plan = sim_plan(simulator, baseline_model=base, candidate_model="judge-eval-cand", key="judge-eval",
                    shadow_comparator="judge", judge_endpoint=judge, shadow_agreement_threshold=0.5)
    prompts = [f"Where is order {i}?" for i in range(12)]
    lines = "\n".join(json.dumps({"input": p, "expected": live_baseline_answer(plan, p)["text"]}) for p in prompts)
    dataset, _ = dataset_import(actor="test", name="judge-eval-cases", content=lines, fmt="jsonl")

    run = evaluation_run_execute(run_id=evaluation_run_create(actor="test", dataset=dataset, plan=plan,
                                                              comparator="judge", repetitions=1).pk)

    assert run.state == "completed" and run.accuracy_threshold == 0.5 and run.judge_endpoint == judge
    candidate = EvaluationResult.objects.filter(run=run, arm="candidate")
    altered = {r.case_id for r in candidate if r.text == "I do not know."}
    assert 0 < len(altered) < 12
    for result in candidate:
        expected = 0.0 if result.case_id in altered else 1.0
        assert (result.accuracy, result.agreement) == (expected, expected)
        assert result.judge_cost > 0 and "agreement: judge" in result.reason
    arms = run.report["arms"]
    assert arms["baseline"]["accuracy"] == 1.0
    assert arms["candidate"]["accuracy"] == pytest.approx(1 - len(altered) / 12)
    judge_total = sum(EvaluationResult.objects.filter(run=run).values_list("judge_cost", flat=True))
    assert run.report["judge"] == {"model": judge.model, "cost_total": pytest.approx(judge_total), "no_verdict": 0}
    assert run.cost_total == pytest.approx(arms["baseline"]["cost_total"] + arms["candidate"]["cost_total"]
                                           + judge_total)
    # 12 accuracy verdicts per arm and 12 agreement verdicts
    assert len(simulator.recorded_requests(judge.model)) == 36


def test_evaluation_judge__plan_without_a_judge__refused_naming_judge_endpoint(simulator):
    plan = sim_plan(simulator, baseline_model=answers(simulator, "nj-base", "a"),
                    candidate_model=answers(simulator, "nj-cand", "b"), key="no-judge")
    dataset, _ = dataset_import(actor="test", name="nj-cases", content='{"input": "hi"}', fmt="jsonl")
    with pytest.raises(SettingsInvalid) as refused:
        evaluation_run_create(actor="test", dataset=dataset, plan=plan, comparator="judge")
    assert set(refused.value.errors) == {"judge_endpoint"}


# --- validation: API ------------------------------------------------------------------------------------------


@pytest.fixture
def endpoints(db):
    factories.make_environment("prod")
    factories.make_endpoint("gpt-4-prod", model="gpt-4")
    factories.make_endpoint("claude-sonnet", provider="anthropic", model="claude-3-5-sonnet")
    factories.make_endpoint("judge-pinned", model="gpt-4o-2024-08-06")
    factories.make_endpoint("judge-alias", model="gpt-4o")


def plan_body(**overrides) -> dict:
    return {"key": "support-bot", "environment": "prod", "baseline": "gpt-4-prod", "candidate": "claude-sonnet",
            } | overrides


def test_api_plan_create__judge_comparator_without_judge_endpoint__400_naming_judge_endpoint(endpoints, ops_client):
    response = ops_client.post("/api/v1/plans/", plan_body(shadow_comparator="judge", shadow_agreement_threshold=0.5),
                               format="json")
    assert response.status_code == 400 and set(response.json()) == {"judge_endpoint"}
    assert "required when the comparator is judge" in response.json()["judge_endpoint"][0]
    assert not MigrationPlan.objects.exists()


def test_api_plan_create__judge_endpoint_on_a_moving_alias__400_naming_judge_endpoint(endpoints, ops_client):
    response = ops_client.post("/api/v1/plans/", plan_body(judge_endpoint="judge-alias"), format="json")
    assert response.status_code == 400 and "moving alias" in response.json()["judge_endpoint"][0]


def test_api_plan_create__judge_with_the_default_threshold__400_naming_the_threshold(endpoints, ops_client):
    response = ops_client.post("/api/v1/plans/", plan_body(shadow_comparator="judge", judge_endpoint="judge-pinned"),
                               format="json")
    assert response.status_code == 400 and set(response.json()) == {"shadow_agreement_threshold"}
    assert "at most 0.5" in response.json()["shadow_agreement_threshold"][0]


def test_api_plan_create__judge_configured__201_and_shown_by_name(endpoints, ops_client):
    response = ops_client.post("/api/v1/plans/", plan_body(
        shadow_comparator="judge", judge_endpoint="judge-pinned", shadow_agreement_threshold=0.5,
        judge_rubric="Prefer answers that cite the policy."), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["shadow_comparator"], body["judge_endpoint"], body["judge_rubric"]) == (
        "judge", "judge-pinned", "Prefer answers that cite the policy.")
    assert ops_client.get("/api/v1/plans/support-bot/").json()["judge_endpoint"] == "judge-pinned"
    event = MigrationPlan.objects.get().audit_events.get(action="plan.created")
    assert event.after["judge_endpoint"] == "judge-pinned"


def test_api_plan_patch__switching_to_the_judge__needs_the_endpoint_then_saved_and_audited(endpoints, ops_client):
    assert ops_client.post("/api/v1/plans/", plan_body(), format="json").status_code == 201
    refused = ops_client.patch("/api/v1/plans/support-bot/", {"shadow_comparator": "judge"}, format="json")
    assert refused.status_code == 400 and "judge_endpoint" in refused.json()

    response = ops_client.patch("/api/v1/plans/support-bot/", {
        "shadow_comparator": "judge", "judge_endpoint": "judge-pinned", "shadow_agreement_threshold": 0.5},
        format="json")
    assert response.status_code == 200, response.json()
    event = MigrationPlan.objects.get().audit_events.get(action="plan.updated")
    assert event.before["judge_endpoint"] is None and event.after["judge_endpoint"] == "judge-pinned"
    # The judge endpoint cannot be removed while the judge compares.
    again = ops_client.patch("/api/v1/plans/support-bot/", {"judge_endpoint": None}, format="json")
    assert again.status_code == 400 and "judge_endpoint" in again.json()


def test_api_quality_settings__judge__validated_against_the_plan_and_echoed_by_name(endpoints, ops_client):
    plan = factories.make_plan()
    url = f"/api/v1/plans/{plan.key}/quality-settings/"
    refused = ops_client.post(url, {"shadow_comparator": "judge", "shadow_agreement_threshold": 0.5}, format="json")
    assert refused.status_code == 400 and set(refused.json()) == {"judge_endpoint"}

    response = ops_client.post(url, {"shadow_comparator": "judge", "judge_endpoint": "judge-pinned",
                                     "shadow_agreement_threshold": 0.5}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["judge_endpoint"] == "judge-pinned" and response.json()["judge_rubric"] == ""


def test_api_evaluation_run__judge_settings__400_naming_the_field(endpoints, ops_client):
    factories.make_plan()
    dataset_import(actor="test", name="cases", content='{"input": "hi"}', fmt="jsonl")
    body = {"dataset": "cases", "plan": "support-bot", "comparator": "judge"}
    no_judge = ops_client.post("/api/v1/evaluation-runs/", body, format="json")
    assert no_judge.status_code == 400 and set(no_judge.json()) == {"judge_endpoint"}
    strict = ops_client.post("/api/v1/evaluation-runs/", body | {"judge_endpoint": "judge-pinned",
                                                                  "accuracy_threshold": 0.8}, format="json")
    assert strict.status_code == 400 and set(strict.json()) == {"accuracy_threshold"}
    unknown = ops_client.post("/api/v1/evaluation-runs/", body | {"judge_endpoint": "nope"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["judge_endpoint"] == ["no such endpoint"]

    created = ops_client.post("/api/v1/evaluation-runs/", body | {"judge_endpoint": "judge-pinned"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["judge_endpoint"] == "judge-pinned" and created.json()["accuracy_threshold"] == 0.5


# --- validation: admin and plan files -------------------------------------------------------------------------


def test_admin_plan_form__judge_settings__errors_on_the_fields_then_saved(endpoints):
    from tests.integration.test_admin import PLAN_ADD_URL, plan_add_data

    client = Client()
    client.force_login(factories.make_staff_user("admin", superuser=True))
    pair = (factories.make_endpoint("gpt-4-prod"), factories.make_endpoint("claude-sonnet"))
    pinned, alias = factories.make_endpoint("judge-pinned"), factories.make_endpoint("judge-alias")

    response = client.post(PLAN_ADD_URL, plan_add_data(pair, shadow_comparator="judge"))
    errors = response.context["adminform"].form.errors
    assert "required when the comparator is judge" in errors["judge_endpoint"][0]
    assert "at most 0.5" in errors["shadow_agreement_threshold"][0]
    response = client.post(PLAN_ADD_URL, plan_add_data(pair, judge_endpoint=alias.pk))
    assert "moving alias" in response.context["adminform"].form.errors["judge_endpoint"][0]
    assert not MigrationPlan.objects.exists()

    response = client.post(PLAN_ADD_URL, plan_add_data(pair, shadow_comparator="judge", judge_endpoint=pinned.pk,
                                                       shadow_agreement_threshold="0.5", judge_rubric="Be strict."))
    assert response.status_code == 302, response.context["adminform"].form.errors
    plan = MigrationPlan.objects.get()
    assert (plan.shadow_comparator, plan.judge_endpoint, plan.judge_rubric) == ("judge", pinned, "Be strict.")


def test_admin_evaluation_run_form__judge_without_a_judge__error_on_judge_endpoint_then_queued_with_one(endpoints):
    from migrations_app.models import EvaluationRun

    client = Client()
    client.force_login(factories.make_staff_user("admin", superuser=True))
    plan = factories.make_plan()
    dataset, _ = dataset_import(actor="test", name="adm-cases", content='{"input": "hi"}', fmt="jsonl")
    url = "/admin/migrations_app/evaluationrun/add/"
    data = {"plan": plan.pk, "dataset": dataset.pk, "repetitions": 1, "comparator": "judge",
            "accuracy_threshold": ""}

    response = client.post(url, data)
    assert "required when the comparator is judge" in response.context["adminform"].form.errors["judge_endpoint"][0]
    response = client.post(url, data | {"judge_endpoint": factories.make_endpoint("judge-pinned").pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    run = EvaluationRun.objects.get()
    assert (run.comparator, run.judge_endpoint.name, run.accuracy_threshold) == ("judge", "judge-pinned", 0.5)


PLAN_FILE = """
environment: prod
endpoints:
  - {name: gpt-4-prod, provider: openai, model: gpt-4, api_key_env: OPENAI_API_KEY,
     input_price_per_mtok: 30, output_price_per_mtok: 60}
  - {name: claude-sonnet, provider: anthropic, model: claude-3-5-sonnet, api_key_env: ANTHROPIC_API_KEY,
     input_price_per_mtok: 3, output_price_per_mtok: 15}
  - {name: judge, provider: openai, model: %s, api_key_env: OPENAI_API_KEY,
     input_price_per_mtok: 2.5, output_price_per_mtok: 10}
plan:
  key: support-bot
  baseline: gpt-4-prod
  candidate: claude-sonnet
  shadow_comparator: judge
  judge_endpoint: judge
  judge_rubric: Prefer the answer that follows the refund policy.
  shadow_agreement_threshold: 0.5
"""


def test_plan_file__judge_fields__applied(tmp_path, db):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_FILE % "gpt-4o-2024-08-06")
    call_command("plan", "apply", "-f", str(path), stdout=StringIO())
    plan = MigrationPlan.objects.get()
    assert plan.shadow_comparator == "judge" and plan.judge_endpoint.name == "judge"
    assert plan.judge_rubric == "Prefer the answer that follows the refund policy."
    out = StringIO()
    call_command("plan", "apply", "-f", str(path), stdout=out)
    assert "no changes" in out.getvalue()


def test_plan_file__judge_on_a_moving_alias__refused_naming_judge_endpoint(tmp_path, db):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_FILE % "gpt-4o")
    with pytest.raises(CommandError, match="judge_endpoint.*moving alias"):
        call_command("plan", "apply", "-f", str(path), stdout=StringIO())
    assert not MigrationPlan.objects.exists()
