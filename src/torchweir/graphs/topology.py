"""Graph algorithms behind filters and joins, over plain name maps.

* :func:`reachable`: which nodes a request entering at a node can visit. A join waits only
  for its parents in that set, so entering mid-graph with ``node_name`` works.
* :func:`serial_region` and :func:`subgraph_region`: what ``SerialSkip`` and
  ``SubGraphSkip`` fold away, and where the request continues (torchpipe's
  ``get_serial_nexts`` / ``get_subgraph_nexts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["Region", "reachable", "serial_region", "subgraph_region"]

Children = Mapping[str, Sequence[str]]
Parents = Mapping[str, Sequence[str]]
#: ``(folded nodes, ((exit node, the folded parent it is reached through), ...))``
Region = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


def reachable(children: Children, start: str) -> set[str]:
    """``start`` and every node below it."""
    seen = {start}
    stack = [start]
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def serial_region(children: Children, parents: Parents, node: str) -> Region:
    """``node`` plus the chain that follows it while each next node has one parent.

    The chain stops before a join (a node with several parents), which becomes the exit,
    or where it branches, whose branches become the exits.
    """
    chain = [node]
    while True:
        nexts = children[chain[-1]]
        if len(nexts) == 1 and len(parents[nexts[0]]) == 1:
            chain.append(nexts[0])
            continue
        return tuple(chain), tuple((child, chain[-1]) for child in nexts)


def subgraph_region(children: Children, parents: Parents, node: str) -> Region:
    """The largest subgraph rooted at ``node`` whose other members have all their parents
    inside it; the exits are the edges that leave it."""
    region = [node]
    inside = {node}
    changed = True
    while changed:
        changed = False
        for member in list(region):
            for child in children[member]:
                if child not in inside and all(p in inside for p in parents[child]):
                    region.append(child)
                    inside.add(child)
                    changed = True
    exits = tuple(
        (child, member) for member in region for child in children[member] if child not in inside
    )
    return tuple(region), exits
