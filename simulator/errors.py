"""One error hierarchy for the whole project.

``PaleosimError`` is the root. ``SpecError`` is bad input (a malformed file, an unknown layer type, a
shape mismatch, a disconnected topology...): its message names the source file, the field or layer,
and the offending value, so the CLI can print it as one line. ``InfeasibleError`` is valid input that
cannot run (a configuration that does not fit in memory, impossible parallel degrees).
"""
from __future__ import annotations

from typing import Any


class PaleosimError(Exception):
    """Root of every error paleosim raises on purpose."""


class SpecError(PaleosimError, ValueError):
    """Bad input: names where (``source``), what (``field``) and the bad ``value``.

    >>> str(SpecError("bad padding", source="net.json", field="layers.conv1.padding", value="FOO"))
    "net.json: layers.conv1.padding: bad padding (got 'FOO')"
    """

    _NO_VALUE = object()

    def __init__(self, problem: str, *, source: str | None = None, field: str | None = None,
                 value: Any = _NO_VALUE) -> None:
        self.problem = problem
        self.source = source
        self.field = field
        self.value = value
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [p for p in (self.source, self.field) if p]
        text = self.problem
        if self.value is not SpecError._NO_VALUE:
            text += f" (got {self.value!r})"
        return ": ".join(parts + [text])

    def with_source(self, source: str) -> "SpecError":
        """The same error, attributed to ``source`` if it had no source yet."""
        if self.source:
            return self
        return SpecError(self.problem, source=source, field=self.field, value=self.value)


class UnknownNameError(SpecError, KeyError):
    """A name looked up in a registry or catalog that has no such entry.

    The message lists the valid names, sorted.
    """

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...], *,
                 source: str | None = None, field: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}",
                         source=source, field=field)

    def __str__(self) -> str:  # KeyError would quote the message
        return self._render()


class InfeasibleError(PaleosimError):
    """Valid input that cannot run, e.g. a configuration that overflows a device's memory."""


class SymmetryBroken(PaleosimError):
    """A representative-replica run met a case its replicas do not share (different flow rates
    or latencies, different collective plans): the run must be simulated in full. Raised by
    the network and the engine, handled by :func:`simulator.simulate.simulate`."""
