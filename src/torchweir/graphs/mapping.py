"""torchpipe's ``map``: how a node builds its input from its parents' dicts.

``map = "a[result:data],b[result:other]"`` takes ``a``'s ``result`` as ``data`` and ``b``'s
``result`` as ``other``, in a brand-new dict. A source with no name (``"[result:data]"``)
means the node's first parent. A node with several parents waits for all of them.
"""

from __future__ import annotations

import re

from torchweir.errors import ConfigError

__all__ = ["MapRule", "parse_map"]

#: ``(source node or "", ((src_key, dst_key), ...))`` for each bracket group.
MapRule = tuple[str, tuple[tuple[str, str], ...]]

_GROUP = re.compile(r"\s*([A-Za-z0-9_.\-]*)\s*\[([^\[\]]*)\]\s*")
_KEY = re.compile(r"[^\s:\[\],]+")


def parse_map(
    text: str, *, node: str | None = None, file: str | None = None
) -> tuple[MapRule, ...]:
    """Parse a ``map`` string.

    Raises:
        ConfigError: malformed groups or pairs, a source named twice, no ``data`` target.
    """

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{message} in map {text!r}", file=file, node=node, key="map")

    rules: list[MapRule] = []
    pos = 0
    while pos < len(text):
        group = _GROUP.match(text, pos)
        if group is None:
            raise fail(f"expected 'node[src:dst,...]' at position {pos}")
        source, body = group.group(1), group.group(2)
        pairs = []
        for item in body.split(","):
            parts = [part.strip() for part in item.split(":")]
            if len(parts) != 2 or not all(_KEY.fullmatch(part) for part in parts):
                raise fail(f"expected 'src_key:dst_key', got {item.strip()!r}")
            pairs.append((parts[0], parts[1]))
        if any(source == seen for seen, _ in rules):
            raise fail(f"source {source or '(first parent)'!r} appears twice")
        rules.append((source, tuple(pairs)))
        pos = group.end()
        if pos < len(text):
            if text[pos] != ",":
                raise fail(f"expected ',' at position {pos}")
            pos += 1
    if not rules:
        raise fail("expected at least one 'node[src:dst]' group")
    targets = [dst for _, pairs in rules for _, dst in pairs]
    if "data" not in targets:
        raise fail("expected one pair to target 'data' (the node's input)")
    duplicated = sorted({dst for dst in targets if targets.count(dst) > 1})
    if duplicated:
        raise fail(f"target key {duplicated[0]!r} is written twice")
    return tuple(rules)
