"""`manage.py demo`: the whole stack on loopback and a scripted migration rehearsal.

Starts the provider simulator, the web server, a Celery worker and beat, a sidecar, a local webhook sink and
an application (the official openai client, through the sidecar); applies the demo plan (migrations_app/demo.py),
lets the scheduler take it through evaluation, shadow, 5 % and 25 %, injects a regression into the candidate
and waits for the automatic rollback and the signed alert at the webhook sink. Then it keeps the admin up until
Ctrl-C, or with --until-done exits, its last line a JSON summary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from cutover.webhooks import SIGNATURE_HEADER, verify
from migrations_app import demo, selectors
from migrations_app.models import Alert, AuditEvent, EvaluationResult, EvaluationRun, MigrationPlan
from migrations_app.services.rollout import SCHEDULED_STATES, plan_decision

ROOT = Path(settings.BASE_DIR)


class DemoFailed(Exception):
    """Something the rehearsal waited for did not happen; the message says what."""


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    """Child processes, each in its own process group, logging to var/demo/logs; all stopped on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], *, announce: bool = False) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if announce else log, stderr=log,
                                   text=True, start_new_session=True)
        self.children.append((name, process))
        return process

    def read_announcement(self, name: str, process: subprocess.Popen, timeout: float) -> dict[str, Any]:
        """The JSON line a simulator or sidecar prints on stdout once it listens."""
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            raise DemoFailed(f"the {name} did not start listening within {timeout:.0f} s "
                             f"(exit code {process.poll()}).\n{self.tail(name)}")
        return json.loads(line[0])

    def check_alive(self) -> None:
        for name, process in self.children:
            if process.poll() is not None:
                raise DemoFailed(f"the {name} exited unexpectedly (code {process.returncode}).\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 2500) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace")[-chars:] if path.exists() else ""
        return f"--- last lines of {path} ---\n{text}" if text else f"(no output in {path})"

    def stop_all(self) -> None:
        for _, process in reversed(self.children):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process in reversed(self.children):
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children.clear()


def wait_for(condition, timeout: float, what: str, stack: Stack | None = None, interval: float = 0.25,
             on_tick=None) -> Any:
    """Poll until condition() is truthy; DemoFailed naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if on_tick:
            on_tick()
        if stack:
            stack.check_alive()
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- the webhook sink -----------------------------------------------------------------------------------------


class WebhookSink:
    """A tiny HTTP server on loopback that records alert deliveries and checks their signatures."""

    def __init__(self) -> None:
        self.secret = ""
        self.deliveries: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                verified = verify(body, self.headers.get(SIGNATURE_HEADER, ""), sink.secret)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with sink.lock:
                    sink.deliveries.append({"verified": verified, "payload": payload, "at": time.monotonic()})
                self.send_response(200 if verified else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cutover-alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def verified_triggers(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.deliveries if d["verified"] and d["payload"].get("type") == "alert.trigger"]


# --- the application --------------------------------------------------------------------------------------------


class Traffic:
    """An application calling the plan through the sidecar with the official openai client, in a few threads."""

    def __init__(self, sidecar_url: str, model: str, threads: int = 4) -> None:
        import openai

        self.openai = openai
        self.client = openai.OpenAI(base_url=f"{sidecar_url}/v1", api_key="demo-app", max_retries=0, timeout=15)
        self.model = model
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.pause_seconds = 0.0
        self._stop = threading.Event()
        self._n = 0
        self._threads = [threading.Thread(target=self._run, daemon=True, name=f"demo-app-{i}")
                         for i in range(threads)]

    def _next(self) -> int:
        with self.lock:
            self._n += 1
            return self._n

    def _run(self) -> None:
        while not self._stop.is_set():
            n = self._next()
            try:
                raw = self.client.chat.completions.with_raw_response.create(
                    model=self.model, user=f"customer-{n % 2000}", max_tokens=64,
                    messages=[{"role": "system", "content": "You are a helpful support agent."},
                              {"role": "user", "content": demo.question(n)}])
                raw.parse()
                outcome = f"{raw.headers.get('x-cutover-arm', 'unknown')}_ok"
            except self.openai.NotFoundError:
                outcome = "not_routed_yet"  # the sidecar has not seen the plan yet
                self._stop.wait(0.2)
            except self.openai.APIStatusError as error:
                outcome = f"{error.response.headers.get('x-cutover-arm', 'unknown')}_error"
            except self.openai.APIError:
                outcome = "unknown_error"
            with self.lock:
                self.counts[outcome] += 1
            if self.pause_seconds:
                self._stop.wait(self.pause_seconds)

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            counts = dict(self.counts)
        sent = sum(counts.values())
        errors = sum(v for k, v in counts.items() if k.endswith("_error"))
        return {"sent": sent, "ok": sent - errors - counts.get("not_routed_yet", 0), "errors": errors,
                "by_outcome": dict(sorted(counts.items()))}


# --- progress ---------------------------------------------------------------------------------------------------


def bar(fraction: float | None, width: int = 20) -> str:
    if fraction is None:
        return "[" + "·" * width + "]"
    filled = int(round(max(0.0, min(fraction, 1.0)) * width))
    return "[" + "#" * filled + "-" * (width - filled) + f"] {100 * min(fraction, 1.0):3.0f}%"


def _fmt_rate(value: float | None) -> str:
    return "  –  " if value is None else f"{100 * value:4.1f}%"


def _fmt_ms(value: float | None) -> str:
    return "   –  " if value is None else f"{value:5.0f}ms"


class Progress:
    """Status lines: redrawn in place on a terminal, one a second otherwise; events on lines of their own."""

    def __init__(self, out, started: float) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = started
        self._drawn = False

    def event(self, text: str) -> None:
        self._clear()
        self.out.write(f"[{time.monotonic() - self.started:6.1f}s] {text}\n")
        self.out.flush()

    def status(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        if self.tty:
            try:
                width = os.get_terminal_size(self.out.fileno()).columns or 160
            except OSError:
                width = 160
            self.out.write("\r\x1b[2K" + line[: max(width - 1, 60)])
            self._drawn = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\r\x1b[2K")
            self._drawn = False


def phase_progress(plan: MigrationPlan, report: dict[str, Any]) -> tuple[str, float | None]:
    """A short description of what the current phase waits for, and how far along it is (0..1)."""
    now = timezone.now()
    elapsed = (now - plan.step_started_at).total_seconds()
    if plan.state == "evaluating":
        run = EvaluationRun.objects.filter(plan=plan).order_by("-id").first()
        if run is None:
            return "evaluation: queued", 0.0
        total = run.dataset.cases.count() * 2 * run.repetitions
        done = EvaluationResult.objects.filter(run=run).count()
        return f"evaluation run {run.pk}: {done}/{total} calls ({run.state})", done / total if total else None
    if plan.state == "shadowing":
        summary = selectors.shadow_summary(plan=plan, since=plan.step_started_at)
        disagreement = ("–" if summary.disagreement_above_noise is None
                        else f"{100 * summary.disagreement_above_noise:.1f}%")
        fraction = min(elapsed / max(plan.shadow_duration_seconds, 1),
                       summary.comparisons / max(plan.shadow_min_comparisons, 1))
        return (f"shadow: {summary.comparisons}/{plan.shadow_min_comparisons} comparisons, "
                f"disagreement above noise {disagreement}"), fraction
    if plan.state == "rolling_out" and plan.current_step_index is not None:
        step = plan.steps.order_by("order")[plan.current_step_index]
        arms = report["arms"]
        short = min(arms["candidate"]["requests"], arms["baseline"]["requests"])
        healthy = sum(1 for rule in report["rules"] if rule["status"] == "healthy")
        fraction = min(elapsed / max(step.min_hold_seconds, 1), short / max(step.min_samples, 1),
                       healthy / max(len(report["rules"]), 1))
        return f"hold {elapsed:.0f}/{step.min_hold_seconds}s, rules healthy {healthy}/{len(report['rules'])}", fraction
    return plan.state.replace("_", " "), None


def status_line(plan: MigrationPlan, report: dict[str, Any], traffic: Traffic | None) -> str:
    """phase and split | each arm's requests, error rate and p95 in the current step | the phase's progress."""
    what, fraction = phase_progress(plan, report)
    arms = report["arms"]
    parts = [f"{plan.state:<11} {plan.candidate_percent:3.0f}%"]
    for arm, label in (("baseline", "base"), ("candidate", "cand")):
        metrics = arms[arm]["metrics"]
        parts.append(f"{label} {arms[arm]['requests']:>5} err {_fmt_rate(metrics.get('error_rate'))} "
                     f"p95 {_fmt_ms(metrics.get('latency_p95'))}")
    parts.append(f"{bar(fraction, 12)} {what}")
    if traffic is not None:
        parts.append(f"app {traffic.summary()['sent']} calls")
    return " | ".join(parts)


# --- the command ------------------------------------------------------------------------------------------------


class Command(BaseCommand):
    help = ("Bring up the whole stack on loopback and rehearse a migration (gpt-4 → claude-3-5-sonnet, simulated): "
            "evaluation, shadow, 5 %, 25 %, an injected regression, the automatic rollback and the alert. "
            "Keeps the admin up until Ctrl-C, or with --until-done exits with a JSON summary on the last line.")

    def add_arguments(self, parser):
        parser.add_argument("--until-done", action="store_true",
                            help="exit when the rehearsal ends (0 when it ended as scripted); last line: JSON")
        parser.add_argument("--port", type=int, default=None,
                            help="the web server's port (default: 8000, or a free one with --until-done)")
        parser.add_argument("--timeout", type=float, default=120.0,
                            help="seconds to wait for each phase before giving up (default 120)")

    def handle(self, *args, until_done: bool, port: int | None, timeout: float, **options):
        self.out = sys.stdout
        # Queuing the evaluation run from this process makes kombu note the broker URL has no host name.
        logging.getLogger("kombu.connection").setLevel(logging.ERROR)
        self.started = time.monotonic()
        self.progress = Progress(self.out, self.started)
        self.timeout = timeout
        self.summary: dict[str, Any] = {"ok": False}
        var_dir = Path(settings.VAR_DIR)
        self.demo_dir = var_dir / "demo"
        log_dir = self.demo_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        if port is None:
            port = free_port() if until_done else 8000
        if port_in_use(port):
            raise CommandError(f"port {port} on 127.0.0.1 is in use (another `make serve` or demo?); "
                               f"stop it or pass --port N")
        env = self._child_env()
        self.stack = Stack(log_dir, env)
        self.sink = WebhookSink()
        self.traffic: Traffic | None = None
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._rehearse(port, until_done)
            if not until_done:
                self._stay_up(port)
        except KeyboardInterrupt:
            self.progress.event("interrupted: stopping everything")
            if until_done:
                raise CommandError("interrupted before the rehearsal ended") from None
        except DemoFailed as failure:
            self.summary.update(ok=False, error=str(failure).splitlines()[0],
                                duration_seconds=round(time.monotonic() - self.started, 1))
            self.progress.event(f"FAILED: {failure}\nLogs of every process: {log_dir}")
            self.out.write(json.dumps(self.summary, default=str) + "\n")
            self.out.flush()
            raise CommandError(f"the demo did not end as scripted: {str(failure).splitlines()[0]}") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._shutdown()
        if until_done:
            self.out.write(json.dumps(self.summary, default=str) + "\n")
            self.out.flush()

    # --- setup ---

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(demo.FAST_TICKS)
        env.update({
            "DEBUG": "1",  # the demo is loopback-only: development mode, as `make serve`
            "CUTOVER_VAR_DIR": str(settings.VAR_DIR),
            demo.KEY_ENV: "demo-simulator-key",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "PYTHONUNBUFFERED": "1",
        })
        os.environ[demo.KEY_ENV] = env[demo.KEY_ENV]
        return env

    def _say(self, text: str) -> None:
        self.progress.event(text)

    def _rehearse(self, port: int, until_done: bool) -> None:
        db = settings.DATABASES["default"]
        backend = "PostgreSQL" if "postgresql" in db["ENGINE"] else "SQLite" if "sqlite" in db["ENGINE"] else \
            db["ENGINE"]
        broker = "Redis" if settings.REDIS_URL else "embedded file-system broker"
        self._say(f"Cutover demo: {backend} database, {broker}; logs in {self.stack.log_dir}")
        self.summary.update(database=backend, broker=broker)

        self._say("migrating the database …")
        call_command("migrate", interactive=False, verbosity=0)

        python = sys.executable
        scenario_file = self.demo_dir / "scenario.json"
        scenario_file.write_text(json.dumps(demo.SCENARIO, indent=2))
        simulator = self.stack.start("simulator", [python, "-m", "cutover.cli", "simulator", "--port", "0",
                                                   "--scenario", str(scenario_file)], announce=True)
        self.simulator_url = self.stack.read_announcement("simulator", simulator, 20)["simulator"]
        self._say(f"provider simulator (OpenAI and Anthropic wire formats) at {self.simulator_url}")

        self.web_url = f"http://127.0.0.1:{port}"
        self.stack.start("web", [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"])
        self.stack.start("worker", [python, "-m", "celery", "-A", "controlplane", "worker", "--pool=solo",
                                    "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle"])
        self.stack.start("beat", [python, "-m", "celery", "-A", "controlplane", "beat", "--loglevel=INFO",
                                  "--schedule", str(self.demo_dir / "beat-schedule")])
        wait_for(self._web_ready, 60, f"the web server to answer {self.web_url}/healthz", self.stack, 0.3)
        self._say(f"control plane at {self.web_url} (web server, Celery worker and beat with second-scale ticks)")

        self.sink.start()
        setup = demo.set_up(simulator_url=self.simulator_url, webhook_url=self.sink.url)
        self.sink.secret = setup.webhook_secret
        self.admin_password = setup.admin_password
        self.plan_key = setup.plan.key
        self.summary["plan"] = self.plan_key
        self._say(f"webhook sink at {self.sink.url} (signed deliveries, checked with cutover.webhooks.verify)")
        self._say(f"admin: {self.web_url}/admin/  user: {demo.ADMIN_USERNAME}  password: {setup.admin_password}")
        self._say(f"plan {self.plan_key}: {demo.BASELINE_MODEL} ($30/$60 per Mtok) → {demo.CANDIDATE_MODEL} "
                  f"($3/$15), steps 5/25/50/100 %, rules: error rate > 20 % → rollback, p95 > 3× baseline → alert, "
                  f"cost > 1.5× → rollback")

        sidecar = self.stack.start("sidecar", [python, "-m", "cutover.cli", "sidecar", "--control-plane",
                                               self.web_url, "--sdk-key", setup.sdk_key, "--port", "0",
                                               "--config-wait", "20"], announce=True)
        self.sidecar_url = self.stack.read_announcement("sidecar", sidecar, 30)["sidecar"]
        self._say(f"sidecar (OpenAI-compatible) at {self.sidecar_url}/v1 — the app calls model={self.plan_key!r}")

        demo.start(setup.plan)
        self.traffic = Traffic(self.sidecar_url, self.plan_key).start()
        self._say("plan started; the application sends traffic through the sidecar with the official openai client")

        self._seen_audit = AuditEvent.objects.filter(plan__key=self.plan_key).order_by("-id").values_list(
            "id", flat=True).first() or 0
        self._seen_alerts: set[int] = set()
        self._seen_deliveries = 0
        self._last_status = 0.0
        self._status_interval = 1.0
        self._watch_until(lambda p: p.state == "rolling_out" and p.candidate_percent >= 25,
                          "the plan to reach 25 % (through evaluation, shadow and 5 %)", self.timeout * 3)

        self._say(f"injecting a regression into {demo.CANDIDATE_MODEL}: 60 % server errors, p95 ~900 ms "
                  f"(via the simulator's {self.simulator_url}/_sim/models/{demo.CANDIDATE_MODEL})")
        response = httpx.post(f"{self.simulator_url}/_sim/models/{demo.CANDIDATE_MODEL}", json=demo.REGRESSION,
                              timeout=10)
        if response.status_code != 200:
            raise DemoFailed(f"the simulator refused the regression: {response.status_code} {response.text[:300]}")
        injected_at = time.monotonic()
        self._watch_until(lambda p: p.state == "rolled_back", "the health checker's automatic rollback",
                          self.timeout)
        rolled_back_after = time.monotonic() - injected_at
        wait_for(lambda: self.sink.verified_triggers(), 60, "the alert at the webhook sink", self.stack,
                 on_tick=self._tick)
        self._tick(force=True)
        self._finish_summary(rolled_back_after)
        self._say(f"rehearsal done in {self.summary['duration_seconds']:.0f} s: rolled back "
                  f"{rolled_back_after:.1f} s after the regression; alert received and its signature verified")
        errors = self.summary["requests"].get("errors", 0)
        self._say(f"the application saw {errors} failed call(s) out of {self.summary['requests'].get('sent', 0)}: "
                  f"the sidecar retried and fell back to the baseline when the candidate failed, and the rollback "
                  f"sent everyone back to {demo.BASELINE_MODEL}")

    def _web_ready(self) -> bool:
        try:
            return httpx.get(f"{self.web_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _watch_until(self, predicate, what: str, timeout: float) -> None:
        def reached() -> bool:
            close_old_connections()
            plan = MigrationPlan.objects.get(key=self.plan_key)
            if plan.state in ("paused", "aborted") or (plan.state == "rolled_back" and "rollback" not in what):
                self._tick(force=True)
                raise DemoFailed(f"the plan is {plan.state} while waiting for {what}: {self._last_reason(plan)}")
            return predicate(plan)

        try:
            wait_for(reached, timeout, what, self.stack, on_tick=self._tick)
        except DemoFailed as failure:
            plan = MigrationPlan.objects.get(key=self.plan_key)
            decision = plan_decision(plan=plan, now=timezone.now()) if plan.state in SCHEDULED_STATES else None
            raise DemoFailed(f"{failure}: the plan is {plan.state} at {plan.candidate_percent:g} %"
                             + (f"; the scheduler is {decision.reason}" if decision else "")) from None
        self._tick(force=True)

    def _last_reason(self, plan: MigrationPlan) -> str:
        event = AuditEvent.objects.filter(plan=plan).order_by("-id").first()
        return f"{event.action} by {event.actor}: {event.reason}" if event else "no audit event"

    def _tick(self, force: bool = False) -> None:
        """Print new audit events, alerts and webhook deliveries; the status line once a second."""
        plan = MigrationPlan.objects.get(key=self.plan_key)
        for event in AuditEvent.objects.filter(plan=plan, id__gt=self._seen_audit).order_by("id"):
            self._seen_audit = event.id
            if event.action.startswith("plan.") and "state" in event.after:
                where = event.after["state"] + (f" at {event.after['candidate_percent']:g} %"
                                                if event.after["state"] == "rolling_out" else "")
                self._say(f"▶ {event.action.removeprefix('plan.')} → {where} ({event.actor}: {event.reason})")
            elif event.action == "evaluation.completed":
                self._say(f"▶ evaluation run {event.after.get('run')}: "
                          f"{'passed' if event.after.get('passed') else 'FAILED'} — {event.after.get('summary')}")
        for alert in Alert.objects.filter(plan=plan).exclude(id__in=self._seen_alerts):
            self._seen_alerts.add(alert.id)
            self._say(f"⚠ alert {alert.name} ({alert.severity}, {alert.state}): {alert.summary}")
        with self.sink.lock:
            new = self.sink.deliveries[self._seen_deliveries:]
            self._seen_deliveries = len(self.sink.deliveries)
        for delivery in new:
            alert = delivery["payload"].get("alert", {})
            self._say(f"✉ webhook sink received {delivery['payload'].get('type')} {alert.get('name')} "
                      f"for {alert.get('plan')} — signature {'verified' if delivery['verified'] else 'INVALID'}")
        if force or time.monotonic() - self._last_status >= self._status_interval:
            self._last_status = time.monotonic()
            report = selectors.plan_report(plan=plan, now=timezone.now())
            self.progress.status(status_line(plan, report, self.traffic))

    def _finish_summary(self, rolled_back_after: float) -> None:
        plan = MigrationPlan.objects.get(key=self.plan_key)
        moves = list(AuditEvent.objects.filter(plan=plan, action__startswith="plan.").order_by("id"))
        moves = [m for m in moves if "state" in m.after]
        phases = []
        for move, following in zip(moves, moves[1:] + [None], strict=True):
            end = following.created_at if following else timezone.now()
            phases.append({"state": move.after["state"], "candidate_percent": move.after.get("candidate_percent"),
                           "entered_by": move.actor,
                           "seconds": round((end - move.created_at).total_seconds(), 1)})
        triggers = self.sink.verified_triggers()
        alert = triggers[0]["payload"]["alert"]
        rollback = next((m for m in reversed(moves) if m.action == "plan.rollback"), None)
        self.summary.update(
            ok=plan.state == "rolled_back" and bool(triggers), plan=plan.key, final_state=plan.state,
            phases=phases, rolled_back=plan.state == "rolled_back",
            rolled_back_by=rollback.actor if rollback else None,
            rollback_reason=rollback.reason if rollback else None,
            seconds_from_regression_to_rollback=round(rolled_back_after, 1),
            alert_received=True, alert={"name": alert.get("name"), "severity": alert.get("severity"),
                                        "signature_verified": True},
            requests=self.traffic.summary() if self.traffic else {},
            admin_url=f"{self.web_url}/admin/",
            duration_seconds=round(time.monotonic() - self.started, 1),
        )

    def _stay_up(self, port: int) -> None:
        if self.traffic is not None:
            self.traffic.pause_seconds = 0.5  # a trickle: the dashboards keep moving, the laptop stays cool
        plan = MigrationPlan.objects.get(key=self.plan_key)
        try:
            page = reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk])
        except NoReverseMatch:
            page = reverse("admin:migrations_app_migrationplan_change", args=[plan.pk])
        self._say(f"The stack stays up. Admin: {self.web_url}/admin/ (user {demo.ADMIN_USERNAME}, password "
                  f"{self.admin_password}); this run's plan: {self.web_url}{page}. Ctrl-C stops everything.")
        # Keep showing what happens (a retry or an abort pressed in the admin, say): the status line is
        # redrawn every second on a terminal, printed every 15 s otherwise.
        self._status_interval = 1.0 if self.progress.tty else 15.0
        while True:
            self.stack.check_alive()
            close_old_connections()
            self._tick()
            time.sleep(1)

    def _shutdown(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        self.stack.stop_all()
        with contextlib.suppress(Exception):
            self.sink.stop()


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt
