"""A small reader for protobuf *text format*, enough for Caffe's ``.prototxt`` files.

Caffe stores network definitions as protobuf messages in text form. Reading them needs no protobuf
library and no schema: text format is self-describing up to the meaning of the fields, which the
converter (:mod:`workloads.caffe`) knows. The grammar accepted here is the one protobuf's text
parser accepts for the cases that occur in practice:

- a message is a sequence of fields, each optionally followed by ``,`` or ``;``;
- a scalar field is ``name: value``; a value is a number (``3``, ``-1``, ``1e-5``, ``0x1F``,
  ``inf``), a quoted string (``"a"`` or ``'a'``, with backslash escapes; adjacent strings
  concatenate) or an identifier (an enum name such as ``MAX``, or ``true``/``false``);
- a message field is ``name { ... }`` or ``name < ... >``, with an optional ``:`` before the
  opening bracket;
- a repeated field is the same name written several times, or the list form ``name: [1, 2]``;
- ``#`` starts a comment that runs to the end of the line.

Every field keeps the line it started on, so that errors in the converter can point at it; a
malformed file raises :class:`~simulator.errors.SpecError` naming the file and the line.

>>> net = parse_prototxt('name: "tiny"  layer { name: "c" kernel_size: 3 kernel_size: 5 }')
>>> net.get("name"), net.get("layer").get_all("kernel_size")
('tiny', [3, 5])
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Iterator, Union

from simulator.errors import SpecError

__all__ = ["Enum", "Field", "Message", "parse_prototxt"]


class Enum(str):
    """An unquoted identifier value (an enum name, or ``true``/``false``).

    A ``str`` subclass, so that ``pool: MAX`` compares equal to ``"MAX"``, while a converter can
    still tell an identifier from a quoted string when that matters.
    """

    __slots__ = ()


Scalar = Union[int, float, str]


@dataclass(frozen=True)
class Field:
    """One ``name: value`` or ``name { ... }`` occurrence; ``line`` is 1-based."""

    name: str
    value: "Scalar | Message"
    line: int


@dataclass(frozen=True)
class Message:
    """A parsed message: its fields in file order, and the line its body starts on."""

    fields: tuple[Field, ...]
    line: int

    def get_all(self, name: str) -> list[Any]:
        """Every value of field ``name``, in file order (a repeated field)."""
        return [f.value for f in self.fields if f.name == name]

    def get(self, name: str, default: Any = None) -> Any:
        """The value of a singular field ``name``: the last one written, as protobuf reads it."""
        values = self.get_all(name)
        return values[-1] if values else default

    def field(self, name: str) -> Field | None:
        """The last :class:`Field` named ``name`` (with its line), or None."""
        for f in reversed(self.fields):
            if f.name == name:
                return f
        return None

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def line_of(self, name: str) -> int:
        """The line of field ``name`` if present, else the message's own line."""
        found = self.field(name)
        return found.line if found is not None else self.line


_TOKEN = re.compile(r"""
      (?P<space>[ \t\r\f\v]+)
    | (?P<newline>\n)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+
                        |(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[{}<>:,;\[\]-])
""", re.VERBOSE)

_CLOSERS = {"{": "}", "<": ">"}


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, ident, punct, eof
    text: str
    line: int


def _tokenize(text: str, source: str) -> Iterator[_Token]:
    line = 1
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SpecError("unexpected character", source=source, field=f"line {line}",
                            value=text[pos])
        kind = match.lastgroup
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            yield _Token(kind, match.group(), line)
        pos = match.end()
    yield _Token("eof", "", line)


class _Parser:
    """Recursive descent over the token stream: one method per grammar rule."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens = list(_tokenize(text, source))
        self.pos = 0

    # -- token helpers ---------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def error(self, problem: str, token: _Token | None = None) -> SpecError:
        token = token or self.tok
        if token.kind == "eof":  # no token to quote
            if "end of file" not in problem:
                problem += " before the end of file"
            return SpecError(problem, source=self.source, field=f"line {token.line}")
        return SpecError(problem, source=self.source, field=f"line {token.line}", value=token.text)

    def take(self) -> _Token:
        token = self.tok
        if token.kind != "eof":
            self.pos += 1
        return token

    def accept(self, text: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == text:
            self.pos += 1
            return True
        return False

    # -- grammar -------------------------------------------------------------------------------
    def message(self, closer: str | None, line: int) -> Message:
        fields: list[Field] = []
        while True:
            token = self.tok
            if closer is None and token.kind == "eof":
                return Message(tuple(fields), line)
            if closer is not None and token.kind == "punct" and token.text == closer:
                self.take()
                return Message(tuple(fields), line)
            if token.kind == "eof":
                raise self.error(f"unexpected end of file: missing {closer!r} for the message "
                                 f"opened on line {line}")
            if token.kind != "ident":
                raise self.error("expected a field name")
            fields.extend(self.field())
            if not self.accept(","):
                self.accept(";")

    def field(self) -> list[Field]:
        name = self.take()
        colon = self.accept(":")
        token = self.tok
        if token.kind == "punct" and token.text in _CLOSERS:
            self.take()
            return [Field(name.text, self.message(_CLOSERS[token.text], token.line), name.line)]
        if not colon:
            raise self.error(f"expected ':' or '{{' after field name {name.text!r}")
        if self.accept("["):
            return [Field(name.text, value, name.line) for value in self.list_values()]
        return [Field(name.text, self.scalar(), name.line)]

    def list_values(self) -> list[Any]:
        values: list[Any] = []
        if self.accept("]"):
            return values
        while True:
            token = self.tok
            if token.kind == "punct" and token.text in _CLOSERS:
                self.take()
                values.append(self.message(_CLOSERS[token.text], token.line))
            else:
                values.append(self.scalar())
            if self.accept("]"):
                return values
            if not self.accept(","):
                raise self.error("expected ',' or ']' in a list value")

    def scalar(self) -> Scalar:
        token = self.take()
        if token.kind == "string":
            parts = [self.unquote(token)]
            while self.tok.kind == "string":  # adjacent literals concatenate
                parts.append(self.unquote(self.take()))
            return "".join(parts)
        if token.kind == "number":
            return self.number(token.text, token)
        if token.kind == "punct" and token.text == "-" and self.tok.kind in ("number", "ident"):
            operand = self.take()
            if operand.kind == "number":
                return self.number("-" + operand.text, operand)
            if operand.text.lower() in ("inf", "infinity"):
                return float("-inf")
            raise self.error("expected a number after '-'", operand)
        if token.kind == "ident":
            lowered = token.text.lower()
            if lowered in ("inf", "infinity", "nan"):
                return float(lowered)
            return Enum(token.text)
        raise self.error("expected a value (number, string or identifier)", token)

    def number(self, text: str, token: _Token) -> int | float:
        body = text.lstrip("+-")
        sign = -1 if text.startswith("-") else 1
        if body[:2].lower() == "0x":
            return sign * int(body, 16)
        if re.fullmatch(r"\d+", body):
            return sign * int(body)
        try:
            return sign * float(body.rstrip("fF"))
        except ValueError:  # pragma: no cover - the token pattern only admits valid floats
            raise self.error("malformed number", token) from None

    def unquote(self, token: _Token) -> str:
        body = token.text
        try:
            # A Python string literal has the same escapes as protobuf's for the cases that
            # occur (\n, \t, \\, \", \', octal and hex); it rejects any it does not know.
            return ast.literal_eval(body)
        except (ValueError, SyntaxError):
            raise self.error("malformed string literal", token) from None


def parse_prototxt(text: str, *, source: str = "<string>") -> Message:
    """Parse protobuf text format into a :class:`Message` tree.

    Parameters
    ----------
    text
        The file's contents.
    source
        Name used in error messages (normally the file path).

    Raises
    ------
    SpecError
        On malformed input, naming ``source`` and the line of the offending token.
    """
    parser = _Parser(text, source)
    return parser.message(None, 1)
