"""The `cutover` command. Each subcommand registers itself in `build_parser`; `main` dispatches.

    cutover simulator --port 8900 [--scenario FILE] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cutover", description="Cutover: migrate LLM traffic between models safely.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulator(commands)
    # The sidecar subcommand (`cutover sidecar --control-plane URL --sdk-key KEY --port N`) registers
    # here, the same way: an `_add_sidecar(commands)` that sets `handler` with set_defaults.
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


if __name__ == "__main__":
    sys.exit(main())
