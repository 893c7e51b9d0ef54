"""The sidecar's added latency: the official openai client through the sidecar vs. directly at the same
simulated model, interleaved in one run, at a fixed offered rate (open loop) and at the highest rate the
sidecar sustains.

    .venv/bin/python bench/sidecar_latency.py [--seconds 10] [--write-docs]

The simulator runs in its own process (zero-latency script); the sidecar in another (`cutover sidecar`),
on a bootstrap config document (a plan at 50 %, both arms OpenAI-format on the simulator) so no control
plane is needed; events go to a local sink that answers 202. Added latency = per-percentile difference
between the two paths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- sidecar-latency:start -->", "<!-- sidecar-latency:end -->"
KEY_ENV = "CUTOVER_BENCH_SIM_KEY"


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen([sys.executable, "-m", "cutover.cli", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    return process, json.loads(process.stdout.readline())


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"accepted": 0, "duplicate": 0}'
        self.send_response(202 if self.command == "POST" else 304)
        self.send_header("Content-Length", str(len(body) if self.command == "POST" else 0))
        self.end_headers()
        if self.command == "POST":
            self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_at_rate(direct: openai.OpenAI, via: openai.OpenAI, rate: float, seconds: float) -> dict:
    """Open loop: requests start on a fixed schedule, alternating direct and via the sidecar."""
    samples: dict[str, list[float]] = {"direct": [], "sidecar": []}
    errors = [0]
    lock = threading.Lock()

    def one(path: str, index: int) -> None:
        client = direct if path == "direct" else via
        model = "bench-model" if path == "direct" else "bench-plan"
        started = time.perf_counter()
        try:
            client.chat.completions.create(model=model, user=f"user-{index}",
                                           messages=[{"role": "user", "content": f"q{index}"}])
        except Exception:
            with lock:
                errors[0] += 1
            return
        with lock:
            samples[path].append((time.perf_counter() - started) * 1000)

    total = int(rate * seconds)
    begin = time.perf_counter()
    lag = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(total):
            due = begin + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            lag.append(time.perf_counter() - due)
            pool.submit(one, "direct" if i % 2 == 0 else "sidecar", i)
    elapsed = time.perf_counter() - begin
    result = {"rate": rate, "achieved": total / elapsed, "errors": errors[0], "n": len(samples["sidecar"])}
    for path in ("direct", "sidecar"):
        result[path] = {"p50": percentile(samples[path], 0.5), "p99": percentile(samples[path], 0.99)}
    result["added"] = {q: result["sidecar"][q] - result["direct"][q] for q in ("p50", "p99")}
    result["schedule_lag_p99_ms"] = percentile(lag, 0.99) * 1000
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    env = os.environ | {KEY_ENV: "bench", "PYTHONPATH": str(ROOT)}
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    simulator, sim_info = start(["simulator", "--port", "0"], env)
    sim = sim_info["simulator"]
    arm = {"provider": "openai", "model": "bench-model", "base_url": f"{sim}/v1", "api_key_env": KEY_ENV,
           "params": {}, "prompt_adapter": None}
    document = {"environment": "bench", "version": 1, "plans": [{
        "key": "bench-plan", "state": "rolling_out", "candidate_percent": 50.0, "rollback": False,
        "shadow_sample_rate": 0.0, "salt": "bench", "baseline": arm, "candidate": arm}]}
    bootstrap = Path(tempfile.mkdtemp()) / "config.json"
    bootstrap.write_text(json.dumps(document))
    sidecar, side_info = start(["sidecar", "--control-plane", sink_url, "--sdk-key", "bench", "--port", "0",
                                "--bootstrap", str(bootstrap)], env)
    try:
        direct = openai.OpenAI(base_url=f"{sim}/v1", api_key="bench", max_retries=0)
        via = openai.OpenAI(base_url=f"{side_info['sidecar']}/v1", api_key="bench", max_retries=0)
        run_at_rate(direct, via, 100, 2)  # warm-up
        rows = [run_at_rate(direct, via, 100, args.seconds)]
        for rate in (200, 400, 600, 800, 1000, 1400):
            row = run_at_rate(direct, via, rate, args.seconds / 2)
            sustained = row["errors"] == 0 and row["achieved"] >= 0.95 * rate and row["sidecar"]["p99"] < 100
            print(json.dumps(row), flush=True)
            if not sustained:
                break
            rows.append(row)
    finally:
        for process in (sidecar, simulator):
            process.terminate()
            process.wait(10)
        sink.shutdown()
    for row in rows:
        print(json.dumps(row))
    if args.write_docs:
        write_docs(rows, args.seconds)
    return 0


def write_docs(rows: list[dict], seconds: float) -> None:
    lines = [START, "## Sidecar added latency", "",
             f"`bench/sidecar_latency.py` — {date.today().isoformat()}, Python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs. Simulator, sidecar and load generator in three processes on one machine; "
             "zero-latency simulated model; official `openai` client (sync, 16 threads, open-loop schedule), "
             "requests alternating between a direct call to the simulated model and the same call through the "
             f"sidecar (plan at 50 %, both arms on the simulator), {seconds:g} s at 100 requests/s and "
             f"{seconds / 2:g} s per higher rate. Added = sidecar − direct, per percentile.", "",
             "| offered rate (req/s, both paths) | achieved | direct p50 ms | direct p99 ms | sidecar p50 ms | "
             "sidecar p99 ms | **added p50 ms** | **added p99 ms** |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['rate']:g} | {row['achieved']:.0f} | {row['direct']['p50']:.2f} | "
                     f"{row['direct']['p99']:.2f} | {row['sidecar']['p50']:.2f} | {row['sidecar']['p99']:.2f} | "
                     f"**{row['added']['p50']:.2f}** | **{row['added']['p99']:.2f}** |")
    lines += ["", "Goal at 100 requests/s: added p50 ≤ 1 ms, p99 ≤ 3 ms. The highest rate listed is the highest "
              "sustained (no errors, ≥ 95 % of the offered rate, sidecar p99 < 100 ms).", END]
    text = DOCS.read_text()
    section = "\n".join(lines)
    if START in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
