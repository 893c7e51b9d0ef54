"""The `cutover` command. Each subcommand registers itself in `build_parser`; `main` dispatches.

    cutover simulator --port 8900 [--scenario FILE] [--host 127.0.0.1]
    cutover sidecar --control-plane URL --sdk-key KEY --port N [--bootstrap FILE] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cutover", description="Cutover: migrate LLM traffic between models safely.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulator(commands)
    _add_sidecar(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


# --- simulator ---------------------------------------------------------------------------------


def _add_simulator(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulator",
        help="serve simulated OpenAI, Anthropic and Gemini models on loopback",
        description="Serve simulated models speaking the OpenAI chat-completions, Anthropic messages and "
        "Gemini generateContent wire formats. Without --scenario every model name answers with the "
        "default script.",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--scenario", metavar="FILE", help="JSON scenario file (see docs/providers.md)")
    parser.set_defaults(handler=_run_simulator)


def _run_simulator(args: argparse.Namespace) -> int:
    from cutover.simulator import Scenario, SimulatorServer

    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    except (OSError, ValueError, TypeError) as error:
        print(f"cutover simulator: cannot load scenario {args.scenario}: {error}", file=sys.stderr)
        return 2
    server = SimulatorServer(scenario, host=args.host, port=args.port)

    def announce(ready: SimulatorServer) -> None:
        # One JSON line on stdout, so that scripts that start the simulator can read the bound port.
        print(json.dumps({"simulator": ready.base_url, "port": ready.port}), flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop it
        asyncio.run(server.serve(on_ready=announce))
    return 0


# --- sidecar -----------------------------------------------------------------------------------


def _add_sidecar(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sidecar",
        help="serve an OpenAI-compatible endpoint that routes by the current split",
        description="Serve OpenAI's chat-completions API (POST /v1/chat/completions, GET /v1/models). The "
        "request's model names the plan; each call goes to the plan's baseline or candidate, is reported to "
        "the control plane and mirrored for shadow comparison. Provider keys come from the environment "
        "variables the config document names.",
    )
    parser.add_argument("--control-plane", required=True, metavar="URL", help="the control plane's base URL")
    parser.add_argument("--sdk-key", default=os.environ.get("CUTOVER_SDK_KEY"), metavar="KEY",
                        help="an SDK key of the environment (default: $CUTOVER_SDK_KEY)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--bootstrap", metavar="FILE",
                        help="keep the last good config document in FILE and start from it")
    parser.add_argument("--config-wait", type=float, default=30.0, help="long-poll seconds (default 30)")
    parser.add_argument("--workers", type=int, default=64,
                        help="threads for Anthropic/Gemini calls (official SDKs; default 64)")
    parser.add_argument("--no-shadow", action="store_true", help="never mirror shadow samples")
    parser.set_defaults(handler=_run_sidecar)


def _run_sidecar(args: argparse.Namespace) -> int:
    import logging

    from cutover.sdk import CutoverClient
    from cutover.sidecar import Sidecar

    if not args.sdk_key:
        print("cutover sidecar: --sdk-key (or CUTOVER_SDK_KEY) is required", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = CutoverClient(args.control_plane, args.sdk_key, bootstrap_file=args.bootstrap,
                           config_wait=args.config_wait, mirror=not args.no_shadow,
                           max_workers=args.workers)
    client.config.wait_until_ready(5.0)  # serve at once anyway: with no config, everything goes to the baseline
    sidecar = Sidecar(client, host=args.host, port=args.port)

    def announce(ready: Sidecar) -> None:
        print(json.dumps({"sidecar": ready.base_url, "port": ready.port, "config": client.config.status()}),
              flush=True)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it like Ctrl-C: events are flushed on the way out

    signal.signal(signal.SIGTERM, interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(sidecar.serve(on_ready=announce))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
