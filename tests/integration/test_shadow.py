"""Shadow comparisons against the simulator: ingest through the SDK API, the comparison task, the noise floor,
paired statistics, exactly-once storage, the ops list and the JSONL export."""

from __future__ import annotations

import json
import uuid

import pytest
from rest_framework.test import APIClient

from cutover.simulator import Scenario, SimulatorServer
from cutover.simulator.scenario import stable_fraction
from migrations_app import selectors
from migrations_app.models import ShadowComparison, ShadowSample
from migrations_app.services.shadow import shadow_compare, shadow_sample_ingest
from tests import factories
from tests.support.simulated_plans import live_baseline_answer, sim_plan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_calls_unlimited")]

PROMPTS = [f"Customer {i} asks about the status of order {1000 + i} and a refund." for i in range(400)]
SEED = 5


@pytest.fixture(scope="module")
def simulator():
    scenario = Scenario.from_dict({"seed": SEED, "default": {"latency": {"median_ms": 0}}})
    with SimulatorServer(scenario) as server:
        yield server


def script(simulator, name: str, answer: dict) -> str:
    simulator.update_script(name, {"answer": answer, "latency": {"median_ms": 0}})
    return name


def nondeterministic_baseline(simulator, name: str) -> str:
    # About 15 % of calls answer with another sample: two calls disagree on about 1 − 0.85² ≈ 28 % of prompts.
    return script(simulator, name, {"kind": "deterministic", "vary_fraction": 0.15})


def request_id(prompt: str) -> str:
    # Fixed by the prompt, so which samples are re-asked for the noise floor is the same every run.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, prompt))


def shadow_payload(plan, prompt: str, params: dict | None = None, **extra) -> dict:
    return {"plan": plan.key, "request_id": extra.pop("request_id", request_id(plan.key + prompt)),
            "request": {"messages": [{"role": "user", "content": prompt}], "params": params or {"max_tokens": 200}},
            "baseline": live_baseline_answer(plan, prompt), "segment": extra.pop("segment", ""), **extra}


def mirror_traffic(plan, prompts, segments=("billing", "shipping")) -> None:
    for index, prompt in enumerate(prompts):
        result = shadow_sample_ingest(environment_id=plan.environment_id,
                                      payload=shadow_payload(plan, prompt, segment=segments[index % len(segments)]))
        shadow_compare(sample_id=result.sample_id)


def test_candidate_drifting_on_30_percent_of_prompts__about_30_percent_disagree_above_the_noise_floor(simulator):
    base = nondeterministic_baseline(simulator, "drift-base")
    cand = script(simulator, "drift-cand", {"kind": "mirror", "mirror_model": base, "alter_fraction": 0.3})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, noise_floor_fraction=0.5)

    mirror_traffic(plan, PROMPTS)

    # The simulator alters a fixed set of prompts (a hash below 0.3): about 30 %, exactly this share here.
    altered = sum(stable_fraction(str(SEED), "alter", cand, "\n" + p) < 0.3 for p in PROMPTS) / len(PROMPTS)
    assert altered == pytest.approx(0.3, abs=0.05)
    summary = selectors.shadow_summary(plan=plan)
    assert summary.comparisons == 400
    assert 160 <= summary.noise_samples <= 240
    assert 0.18 <= summary.noise_floor <= 0.38  # the baseline disagrees with itself on ~28 % of prompts
    assert summary.disagreement > summary.noise_floor
    assert summary.disagreement_above_noise == pytest.approx(altered, abs=0.07)
    low, high = summary.interval
    assert 0.05 < low < altered < high  # always-valid (anytime) interval: wider than a one-look one
    assert summary.verdict == "fail"  # far above the 5 % the plan allows
    assert set(summary.per_segment) == {"billing", "shipping"}
    assert all(seg["comparisons"] == 200 for seg in summary.per_segment.values())
    worst = ShadowComparison.objects.get(pk=summary.worst[0])
    assert worst.disagree and worst.candidate_text == "This answer was altered by the simulator."


def test_candidate_behaving_like_the_nondeterministic_baseline__no_disagreement_above_the_noise_floor(simulator):
    base = nondeterministic_baseline(simulator, "alike-base")
    cand = script(simulator, "alike-cand", {"kind": "mirror", "mirror_model": base, "alter_fraction": 0.0})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, noise_floor_fraction=0.5)

    mirror_traffic(plan, PROMPTS)

    summary = selectors.shadow_summary(plan=plan)
    assert summary.comparisons == 400
    assert summary.disagreement == pytest.approx(summary.noise_floor, abs=0.1)  # it disagrees, but only as noise
    assert summary.disagreement_above_noise < 0.08
    assert summary.interval[0] <= 0.0  # nothing detectably above the noise floor
    assert summary.verdict != "fail"


def test_shadow_task_run_twice__one_comparison_and_one_set_of_calls(simulator):
    base = script(simulator, "twice-base", {"kind": "deterministic"})
    cand = script(simulator, "twice-cand", {"kind": "mirror", "mirror_model": base})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand)
    sample_id = shadow_sample_ingest(environment_id=plan.environment_id,
                                     payload=shadow_payload(plan, "Where is my parcel?")).sample_id
    calls_before = simulator.stats().get(cand, {}).get("ok", 0)

    first = shadow_compare(sample_id=sample_id)
    second = shadow_compare(sample_id=sample_id)

    assert first.pk == second.pk and ShadowComparison.objects.count() == 1
    assert simulator.stats()[cand]["ok"] == calls_before + 1
    assert first.score == 1.0 and not first.disagree
    assert ShadowSample.objects.get(pk=sample_id).state == "done"


def test_same_request_id_posted_twice__one_sample_second_counted_duplicate(simulator):
    plan = sim_plan(simulator, baseline_model=script(simulator, "dup-base", {}),
                    candidate_model=script(simulator, "dup-cand", {}))
    payload = shadow_payload(plan, "Hello")
    first = shadow_sample_ingest(environment_id=plan.environment_id, payload=payload)
    second = shadow_sample_ingest(environment_id=plan.environment_id, payload=payload)
    assert (first.accepted, first.duplicate, second.accepted, second.duplicate) == (1, 0, 0, 1)
    assert ShadowSample.objects.count() == 1


def test_candidate_prompt_adapter__applied_to_the_shadow_call_only(simulator):
    base = script(simulator, "adapt-base", {})
    cand = script(simulator, "adapt-cand", {})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand)
    plan.candidate_prompt_adapter = "claude-v1"
    plan.save(update_fields=["candidate_prompt_adapter"])
    sample_id = shadow_sample_ingest(environment_id=plan.environment_id, payload=shadow_payload(
        plan, "Summarise my last invoice", params={"task": "reasoning"})).sample_id
    shadow_compare(sample_id=sample_id)
    [sent] = simulator.recorded_requests(cand)[-1:]
    plain = simulator.recorded_requests(base)[-1]
    assert "<answer>" in sent.body["messages"][-1]["content"]
    assert plain.body["messages"] == [{"role": "user", "content": "Summarise my last invoice"}]


def test_candidate_answers_cost_and_latency__stored_on_the_comparison_not_in_live_rollups(simulator):
    from migrations_app.models import MetricRollup

    base = script(simulator, "cost-base", {})
    cand = script(simulator, "cost-cand", {"kind": "mirror", "mirror_model": "cost-base"})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand)
    shadow_compare(sample_id=shadow_sample_ingest(environment_id=plan.environment_id, payload=shadow_payload(
        plan, "What does shipping cost?")).sample_id)
    comparison = ShadowComparison.objects.get()
    assert comparison.candidate_cost > 0 and comparison.candidate_latency_ms >= 0
    assert comparison.sample.baseline_cost > comparison.candidate_cost  # the candidate is priced lower
    assert not MetricRollup.objects.exists()


# --- the HTTP API -------------------------------------------------------------------------------------------


@pytest.fixture
def sdk_client():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_sdk_key('prod')}")
    return client


def test_post_shadow__202_accepted_then_duplicate(simulator, sdk_client, django_capture_on_commit_callbacks):
    plan = sim_plan(simulator, baseline_model=script(simulator, "api-base", {}),
                    candidate_model=script(simulator, "api-cand", {}))
    payload = shadow_payload(plan, "Hi there", segment="billing")
    with django_capture_on_commit_callbacks() as callbacks:
        response = sdk_client.post("/api/v1/sdk/shadow", payload, format="json")
    assert response.status_code == 202 and response.json() == {"accepted": 1, "duplicate": 0}
    assert len(callbacks) == 1  # the comparison task is enqueued once the sample is committed
    again = sdk_client.post("/api/v1/sdk/shadow", payload, format="json")
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicate": 1}


def test_post_shadow__malformed__400_naming_each_field(simulator, sdk_client):
    sim_plan(simulator, baseline_model=script(simulator, "bad-base", {}),
             candidate_model=script(simulator, "bad-cand", {}))
    response = sdk_client.post("/api/v1/sdk/shadow", {
        "plan": "no-such-plan", "request_id": "nope", "request": {"messages": [{"role": "robot"}]},
        "baseline": {"latency_ms": -1}, "ts": "yesterday"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["plan"] == ["no such plan in this SDK key's environment"]
    assert set(body) == {"plan", "request_id", "request", "baseline", "ts"}
    assert "messages" in body["request"] and set(body["baseline"]) == {"text", "latency_ms"}
    assert not ShadowSample.objects.exists()


@pytest.mark.parametrize(("task", "problem"), [(7, "task must be a string"),
                                               ("x" * 101, "task must be at most 100 characters")])
def test_post_shadow__task_not_a_short_string__400_naming_task(simulator, sdk_client, task, problem):
    plan = sim_plan(simulator, baseline_model=script(simulator, "task-base", {}),
                    candidate_model=script(simulator, "task-cand", {}))
    response = sdk_client.post("/api/v1/sdk/shadow", shadow_payload(plan, "Hi", params={"task": task}),
                               format="json")
    assert response.status_code == 400 and response.json() == {"request": {"params": [problem]}}
    assert not ShadowSample.objects.exists()


def test_post_shadow__task__stored_with_the_sample(simulator, sdk_client):
    plan = sim_plan(simulator, baseline_model=script(simulator, "task-ok-base", {}),
                    candidate_model=script(simulator, "task-ok-cand", {}))
    response = sdk_client.post("/api/v1/sdk/shadow", shadow_payload(plan, "Hi", params={"task": "x" * 100}),
                               format="json")
    assert response.status_code == 202
    assert ShadowSample.objects.get().request["params"] == {"task": "x" * 100}


def test_post_shadow__key_without_events_write__403(simulator):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_sdk_key('prod', scopes=['config:read'])}")
    assert client.post("/api/v1/sdk/shadow", {}, format="json").status_code == 403


def test_plan_in_another_environment__400_on_plan(simulator):
    plan = sim_plan(simulator, baseline_model=script(simulator, "env-base", {}),
                    candidate_model=script(simulator, "env-cand", {}))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_sdk_key('staging')}")
    response = client.post("/api/v1/sdk/shadow", shadow_payload(plan, "Hi"), format="json")
    assert response.status_code == 400 and "plan" in response.json()


def test_comparisons_list_filtered_by_segment_and_score__and_jsonl_export(simulator, ops_client):
    base = script(simulator, "list-base", {})
    cand = script(simulator, "list-cand", {"kind": "mirror", "mirror_model": base, "alter_fraction": 0.5})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand)
    mirror_traffic(plan, PROMPTS[:20])

    everything = ops_client.get(f"/api/v1/plans/{plan.key}/comparisons/").json()
    assert everything["count"] == 20
    worst = ops_client.get(f"/api/v1/plans/{plan.key}/comparisons/", {"max_score": 0.5, "segment": "billing"}).json()
    assert 0 < worst["count"] < 10
    assert all(row["score"] <= 0.5 and row["segment"] == "billing" for row in worst["results"])
    assert worst["results"][0]["baseline_text"] and worst["results"][0]["candidate_text"]

    export = ops_client.get(f"/api/v1/plans/{plan.key}/comparisons/export.jsonl", {"max_score": 0.5})
    assert export.status_code == 200 and export["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert len(lines) == sum(1 for c in ShadowComparison.objects.all() if c.score <= 0.5)
    assert {"request", "baseline", "candidate", "scores"} <= set(lines[0])
    assert lines[0]["request"]["messages"][0]["role"] == "user"

    summary = ops_client.get(f"/api/v1/plans/{plan.key}/shadow-summary/").json()
    assert summary["comparisons"] == 20 and summary["evaluation_gate"] == "not_required"


def test_quality_settings__set_through_the_api_and_audited(simulator, ops_client):
    plan = sim_plan(simulator, baseline_model=script(simulator, "qs-base", {}),
                    candidate_model=script(simulator, "qs-cand", {}))
    response = ops_client.post(f"/api/v1/plans/{plan.key}/quality-settings/",
                               {"noise_floor_fraction": 0.3, "requires_evaluation_pass": True}, format="json")
    assert response.status_code == 200 and response.json()["noise_floor_fraction"] == 0.3
    plan.refresh_from_db()
    assert plan.requires_evaluation_pass and selectors.evaluation_gate(plan=plan) == "pending"
    assert plan.audit_events.filter(action="plan.updated").exists()


# --- the admin ----------------------------------------------------------------------------------------------


def test_admin_shadow_page__both_answers_side_by_side_with_the_difference_marked(simulator, client):
    base = script(simulator, "admin-base", {})
    cand = script(simulator, "admin-cand", {"kind": "mirror", "mirror_model": base, "alter_fraction": 0.5})
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand)
    mirror_traffic(plan, PROMPTS[:12])
    client.force_login(factories.make_staff_user("admin", superuser=True))

    page = client.get(f"/admin/migrations_app/shadowcomparison/shadow/{plan.key}/", {"max_score": "0.5"})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="shadow-summary"' in html and "beyond noise" in html
    assert '<ins class="cutover-diff">' in html and '<del class="cutover-diff">' in html
    assert "altered by" in html
    assert html.count("module cutover-disagree") == ShadowComparison.objects.filter(score__lte=0.5).count()
    assert client.get("/admin/migrations_app/shadowcomparison/").status_code == 200


def test_admin_evaluation_pages__import_form_and_report_render(simulator, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from migrations_app.services.evaluation import evaluation_run_create, evaluation_run_execute

    plan = sim_plan(simulator, baseline_model=script(simulator, "adm-eval-base", {}),
                    candidate_model=script(simulator, "adm-eval-cand",
                                           {"kind": "mirror", "mirror_model": "adm-eval-base"}))
    client.force_login(factories.make_staff_user("admin", superuser=True))
    upload = SimpleUploadedFile("cases.jsonl", b'{"input": "Hi", "segment": "greeting"}\n{"input": "Bye"}\n')
    response = client.post("/admin/migrations_app/evaluationdataset/import/",
                           {"name": "admin-cases", "format": "jsonl", "file": upload})
    assert response.status_code == 302
    from migrations_app.models import EvaluationDataset

    dataset = EvaluationDataset.objects.get(name="admin-cases")
    run = evaluation_run_execute(run_id=evaluation_run_create(actor="test", dataset=dataset, plan=plan,
                                                              repetitions=2).pk)
    page = client.get(f"/admin/migrations_app/evaluationrun/{run.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="evaluation-report"' in html and "latency p95 (ms)" in html and 'id="recommendation"' in html
