from __future__ import annotations

import pytest

import torchweir as tw
from torchweir.graphs.mapping import parse_map


def test_groups_pairs_and_the_first_parent_shorthand() -> None:
    assert parse_map("a[result:data], b[result:other, color:color]") == (
        ("a", (("result", "data"),)),
        ("b", (("result", "other"), ("color", "color"))),
    )
    assert parse_map("[result:data]") == (("", (("result", "data"),)),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a[result]", "expected 'src_key:dst_key', got 'result'"),
        ("a[result:data]b[x:y]", "expected ',' at position 14"),
        ("a[x:y]", "expected one pair to target 'data'"),
        ("a[result:data],a[x:y]", "source 'a' appears twice"),
        ("a[result:data,x:data]", "target key 'data' is written twice"),
        ("", "expected at least one 'node[src:dst]' group"),
        ("a(result:data)", "expected 'node[src:dst,...]' at position 0"),
    ],
)
def test_malformed_maps_are_config_errors(text: str, expected: str) -> None:
    with pytest.raises(tw.ConfigError) as caught:
        parse_map(text, node="join", file="g.toml")
    assert str(caught.value).startswith("file 'g.toml', node 'join', key 'map': ")
    assert expected in str(caught.value)
