"""Backend expressions: torchpipe's ``"Torch[S[(or)DecodeTensor,ResizeMat(resize_h=224)]]"``.

Grammar (whitespace is ignored between tokens)::

    expr   := name [ "[" step { "," step } "]" ] [ "(" param { "," param } ")" ]
    step   := [ "(" filter ")" ] expr
    param  := key "=" value            # torchpipe's per-step parameter
    name   := identifier { "." identifier } [ ":" identifier ]   # or an import path

``A[B[C]]`` means A wraps B wraps C; ``Sequential[...]`` (short ``S[...]``) runs its steps
in order, each behind an optional filter prefix such as ``(or)``.
"""

from __future__ import annotations

import re

import msgspec

from torchweir.errors import ConfigError

__all__ = ["Backend", "Step", "parse_backend", "render_backend"]

_NAME = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::[A-Za-z_][A-Za-z0-9_]*)?"
)
_FILTER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[A-Za-z_][A-Za-z0-9_.:]*\])?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*")


class Step(msgspec.Struct, frozen=True):
    """One element of a bracket list: an optional filter and the backend it guards."""

    backend: Backend
    filter: str = ""


class Backend(msgspec.Struct, frozen=True):
    """A parsed backend expression.

    Attributes:
        name: a registered name (``DecodeMat``) or import path (``pkg.mod:Kernel``).
        args: what the brackets hold; ``A[B]`` has one step, ``S[A,B]`` two.
        params: ``A(key=value)`` parameters, as strings (torchpipe's postfix params).
    """

    name: str
    args: tuple[Step, ...] = ()
    params: tuple[tuple[str, str], ...] = ()

    def names(self) -> list[str]:
        """Every backend name used, outermost first."""
        found = [self.name]
        for step in self.args:
            found.extend(step.backend.names())
        return found

    def filters(self) -> list[str]:
        """Every step filter used."""
        found = []
        for step in self.args:
            if step.filter:
                found.append(step.filter)
            found.extend(step.backend.filters())
        return found


class _Parser:
    def __init__(self, text: str, node: str | None, file: str | None) -> None:
        self.text = text
        self.pos = 0
        self.node = node
        self.file = file

    def fail(self, expected: str) -> ConfigError:
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
        caret = " " * (self.pos + 2) + "^"
        return ConfigError(
            f"malformed backend expression: expected {expected} at position {self.pos}, "
            f"found {found}\n  {self.text}\n{caret}",
            file=self.file,
            node=self.node,
            key="backend",
        )

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(repr(char))
        self.pos += 1

    def match(self, pattern: re.Pattern[str], expected: str) -> str:
        self.skip_space()
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.fail(expected)
        self.pos = found.end()
        return found.group()

    def expr(self) -> Backend:
        name = self.match(_NAME, "a backend name")
        args: list[Step] = []
        if self.peek() == "[":
            self.pos += 1
            args.append(self.step())
            while self.peek() == ",":
                self.pos += 1
                args.append(self.step())
            self.expect("]")
        params = self.params() if self.peek() == "(" else ()
        return Backend(name=name, args=tuple(args), params=params)

    def step(self) -> Step:
        filter_name = ""
        if self.peek() == "(":
            self.pos += 1
            filter_name = self.match(_FILTER, "a filter name")
            self.expect(")")
        return Step(backend=self.expr(), filter=filter_name)

    def params(self) -> tuple[tuple[str, str], ...]:
        self.expect("(")
        pairs = []
        while True:
            key = self.match(_KEY, "a parameter name")
            self.expect("=")
            self.skip_space()
            end = self.pos
            while end < len(self.text) and self.text[end] not in ",)":
                end += 1
            pairs.append((key, self.text[self.pos : end].strip()))
            self.pos = end
            if self.peek() != ",":
                break
            self.pos += 1
        self.expect(")")
        return tuple(pairs)


def parse_backend(text: str, *, node: str | None = None, file: str | None = None) -> Backend:
    """Parse a backend expression.

    Raises:
        ConfigError: malformed brackets or names, with the position marked.
    """
    if not isinstance(text, str):
        raise ConfigError(
            f"expected a backend expression string, got {type(text).__name__}",
            file=file,
            node=node,
            key="backend",
        )
    parser = _Parser(text, node, file)
    backend = parser.expr()
    if parser.peek():
        raise parser.fail("the end of the expression")
    return backend


def render_backend(backend: Backend) -> str:
    """The canonical text of an expression (no spaces); parses back to an equal value."""
    text = backend.name
    if backend.args:
        steps = (
            (f"({step.filter})" if step.filter else "") + render_backend(step.backend)
            for step in backend.args
        )
        text += "[" + ",".join(steps) + "]"
    if backend.params:
        text += "(" + ",".join(f"{key}={value}" for key, value in backend.params) + ")"
    return text
