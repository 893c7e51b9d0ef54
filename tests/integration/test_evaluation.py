"""Evaluation runs against the simulator: datasets imported from JSONL and CSV, 100 cases × 3 repetitions of
both models with calls in parallel, the report's aggregates, the recommendation and the plan's gate."""

from __future__ import annotations

import json

import pytest

from cutover.simulator import Scenario, SimulatorServer
from cutover.simulator.scenario import stable_fraction
from migrations_app import selectors
from migrations_app.models import Alert, EvaluationCase, EvaluationResult, EvaluationRun, EvaluationSchedule
from migrations_app.services.evaluation import (
    DatasetInvalid,
    dataset_import,
    evaluation_run_create,
    evaluation_run_execute,
    evaluation_schedules_tick,
)
from tests.support.simulated_plans import live_baseline_answer, sim_plan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_calls_unlimited")]

SEED = 9
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(scope="module")
def simulator():
    with SimulatorServer(Scenario.from_dict({"seed": SEED, "default": {"latency": {"median_ms": 0}}})) as server:
        yield server


def json_models(simulator, prefix: str, *, broken_share: float) -> tuple[str, str]:
    """A baseline answering {"answer": ...} and a candidate with the same content that breaks the format
    (prose around the JSON) on `broken_share` of the prompts."""
    base, cand = f"{prefix}-base", f"{prefix}-cand"
    simulator.update_script(base, {"answer": {"kind": "json"}, "latency": {"median_ms": 4, "p95_ms": 12}})
    simulator.update_script(cand, {"answer": {"kind": "mirror", "mirror_model": base, "alter_fraction": broken_share,
                                              "alter": "break_format"}, "latency": {"median_ms": 4, "p95_ms": 12}})
    return base, cand


def jsonl_cases(plan, count: int = 100, with_expected: int = 60) -> str:
    lines = []
    for i in range(count):
        prompt = f"Extract the order number from message {i}: order {5000 + i} has not arrived."
        case = {"id": f"case-{i}", "input": prompt, "segment": "billing" if i % 2 else "shipping",
                "tags": ["extraction"], "json_schema": SCHEMA}
        if i < with_expected:
            case["expected"] = live_baseline_answer(plan, prompt)["text"]
        lines.append(json.dumps(case))
    return "\n".join(lines)


def test_100_cases_3_repetitions__every_call_stored_and_the_report_adds_up(simulator, ops_client):
    base, cand = json_models(simulator, "eval", broken_share=0.1)
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, key="eval-plan")
    imported = ops_client.post("/api/v1/evaluation-datasets/import/", {
        "name": "extraction", "format": "jsonl", "content": jsonl_cases(plan)}, format="json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["cases"] == 100

    created = ops_client.post("/api/v1/evaluation-runs/", {
        "dataset": "extraction", "plan": plan.key, "repetitions": 3, "comparator": "json_equal"}, format="json")
    assert created.status_code == 201 and created.json()["state"] == "queued"
    run = evaluation_run_execute(run_id=created.json()["id"])

    assert run.state == "completed"
    assert EvaluationResult.objects.filter(run=run).count() == 100 * 3 * 2
    report = ops_client.get(f"/api/v1/evaluation-runs/{run.pk}/").json()["report"]
    broken = sum(stable_fraction(str(SEED), "alter", cand, "\n" + case.messages[0]["content"]) < 0.1
                 for case in EvaluationCase.objects.filter(dataset__name="extraction"))
    baseline, candidate = report["arms"]["baseline"], report["arms"]["candidate"]
    assert baseline["calls"] == candidate["calls"] == 300
    assert baseline["accuracy"] == 1.0 and baseline["accuracy_checked"] == 180
    assert candidate["accuracy"] == 1.0  # the same JSON value, even where prose surrounds it
    assert baseline["format_compliance"] == 1.0
    assert candidate["format_compliance"] == pytest.approx(1 - broken / 100)
    assert candidate["agreement"] == 1.0 and baseline["failure_rate"] == candidate["failure_rate"] == 0.0
    assert 0 < candidate["latency_p50_ms"] <= candidate["latency_p95_ms"]
    expected_cost = sum(r.cost for r in EvaluationResult.objects.filter(run=run, arm="candidate")) / 300
    assert candidate["cost_per_request"] == pytest.approx(expected_cost)
    assert candidate["cost_per_request"] < baseline["cost_per_request"]  # the candidate is priced lower
    variance = candidate["variance"]
    assert len(variance["format_compliance"]["per_repetition"]) == 3
    # The format breaks on the same prompts every time: no spread across repetitions.
    assert variance["format_compliance"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert variance["latency_p95_ms"]["std"] is not None
    assert set(report["per_segment"]) == {"billing", "shipping"}
    assert report["per_segment"]["billing"]["candidate"]["calls"] == 150
    assert report["recommendation"]["passed"] is True and run.passed is True
    assert run.cost_total == pytest.approx(baseline["cost_total"] + candidate["cost_total"])


def test_success_criteria_missed__run_fails_and_the_gate_stays_shut(simulator):
    base, cand = json_models(simulator, "strict", broken_share=0.0)
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, key="strict-plan",
                    requires_evaluation_pass=True, max_cost_per_request=1e-9)
    dataset, _ = dataset_import(actor="test", name="tiny", content=jsonl_cases(plan, count=10), fmt="jsonl")
    assert selectors.evaluation_gate(plan=plan) == "pending"

    run = evaluation_run_execute(run_id=evaluation_run_create(actor="test", dataset=dataset, plan=plan,
                                                              repetitions=1).pk)

    assert run.passed is False
    failed = [c["metric"] for c in run.report["recommendation"]["checks"] if c["passed"] is False]
    assert failed == ["cost_per_request"]
    assert selectors.evaluation_gate(plan=plan) == "failed"


def test_run_executed_twice__no_call_made_twice(simulator):
    base, cand = json_models(simulator, "twice", broken_share=0.0)
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, key="twice-plan")
    dataset, _ = dataset_import(actor="test", name="twice", content=jsonl_cases(plan, count=5), fmt="jsonl")
    run = evaluation_run_create(actor="test", dataset=dataset, plan=plan, repetitions=2)
    evaluation_run_execute(run_id=run.pk)
    calls = simulator.stats()[cand]["ok"]
    assert evaluation_run_execute(run_id=run.pk) is None
    assert simulator.stats()[cand]["ok"] == calls and run.results.count() == 20


def test_csv_import__columns_mapped_and_bad_rows_named(simulator):
    content = ("id,input,expected,tags,segment,json_schema\n"
               "a,What is 2+2?,4,math|easy,maths,\n"
               'b,Give JSON,"{""x"": 1}",json,format,"{""type"": ""object""}"\n')
    dataset, count = dataset_import(actor="test", name="csv-cases", content=content, fmt="csv")
    a, b = dataset.cases.order_by("order")
    assert count == 2 and a.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert a.expected == "4" and a.tags == ["math", "easy"] and a.segment == "maths" and a.json_schema is None
    assert b.json_schema == {"type": "object"} and b.params["response_format"] == "json"

    with pytest.raises(DatasetInvalid) as invalid:
        dataset_import(actor="test", name="broken", fmt="jsonl",
                       content='{"input": "fine"}\nnot json\n{"messages": [{"role": "robot", "content": "x"}]}')
    assert set(invalid.value.errors) == {"line 2", "line 3"}


def test_dataset_import_api__400_naming_lines(ops_client):
    response = ops_client.post("/api/v1/evaluation-datasets/import/", {
        "name": "bad", "format": "jsonl", "content": '{"tags": 3}'}, format="json")
    assert response.status_code == 400
    assert set(response.json()["line 1"]) == {"messages", "tags"}


def test_scheduled_run__regression_against_the_previous_run_raises_an_alert(simulator):
    base, cand = json_models(simulator, "weekly", broken_share=0.0)
    plan = sim_plan(simulator, baseline_model=base, candidate_model=cand, key="weekly-plan")
    dataset, _ = dataset_import(actor="test", name="weekly", content=jsonl_cases(plan, count=20), fmt="jsonl")
    schedule = EvaluationSchedule.objects.create(name="weekly", plan=plan, dataset=dataset, baseline=plan.baseline,
                                                 candidate=plan.candidate, repetitions=1)
    [first] = evaluation_schedules_tick()
    assert evaluation_schedules_tick() == []  # not due again for a week
    evaluation_run_execute(run_id=first.pk)
    assert not Alert.objects.exists()

    # The model in service changes under the same name: a third of its answers now break the format.
    simulator.update_script(cand, {"answer": {"alter_fraction": 0.35}})
    EvaluationSchedule.objects.filter(pk=schedule.pk).update(next_run_at=None)
    [second] = evaluation_schedules_tick()
    run = evaluation_run_execute(run_id=second.pk)

    assert run.report["regression"]["against_run"] == first.pk
    assert any("format_compliance fell" in f for f in run.report["regression"]["findings"])
    alert = Alert.objects.get(plan=plan, name="EVALUATION_REGRESSION")
    assert alert.state == "firing" and "format_compliance" in alert.summary
    assert EvaluationRun.objects.filter(schedule=schedule).count() == 2
