"""The ``paleosim`` command line: one small subcommand per module under ``simulator/commands/``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` parses, calls the library, prints and returns an exit code.
The library never prints; commands never compute. Errors from the library (``PaleosimError``)
become one line on stderr and exit code 2; a results file is never half-written.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from simulator.errors import PaleosimError, SpecError, InfeasibleError

# Order here is the order in ``paleosim --help``.
COMMAND_MODULES = (
    "simulator.commands.nets",
    "simulator.commands.summary",
    "simulator.commands.costmodel",
    "simulator.commands.energy",
    "simulator.commands.convert",
    "simulator.commands.simulate",
    "simulator.commands.generate",
    "simulator.commands.devices",
    "simulator.commands.paleo",
    "simulator.commands.topology",
    "simulator.commands.sweep",
    "simulator.commands.validate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paleosim",
        description="Simulate distributed deep-learning training: per-layer costs, parallel "
                    "strategies and network contention, without a GPU.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecError as exc:
        print(f"paleosim: error: {exc}", file=sys.stderr)
        return 2
    except InfeasibleError as exc:
        print(f"paleosim: infeasible: {exc}", file=sys.stderr)
        return 3
    except PaleosimError as exc:
        print(f"paleosim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `paleosim summary ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
