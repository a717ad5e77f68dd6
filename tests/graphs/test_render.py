from __future__ import annotations

from torchweir.graphs.render import to_dot, to_mermaid
from torchweir.graphs.toml import loads_toml

GRAPH = loads_toml(
    """
    [decode]
    backend = "S[Identity,Identity]"
    instance_num = 4
    next = "gpu,cpu"
    [gpu]
    next = "join"
    [cpu]
    filter = "or"
    next = "join"
    [join]
    map = 'gpu[result:data],cpu[result:"other"]'
    max = 8
    batching_timeout = 5
    """
)


def test_mermaid_lists_every_node_and_edge_with_filters() -> None:
    text = to_mermaid(GRAPH)
    assert text.startswith("flowchart LR\n")
    assert 'n0["decode<br/>S[Identity,Identity]<br/>instances 4"]' in text
    assert 'n3["join<br/>Identity<br/>instances 1, max 8, timeout 5 ms<br/>map' in text
    assert "#quot;other#quot;" in text  # quotes escaped for Mermaid
    for edge in ("n0 --> n1", "n0 -->|or| n2", "n1 --> n3", "n2 --> n3"):
        assert edge in text


def test_dot_is_a_digraph_with_labels_and_escaped_quotes() -> None:
    text = to_dot(GRAPH)
    assert text.startswith("digraph torchweir {")
    assert text.rstrip().endswith("}")
    assert '"decode" [label="decode\\nS[Identity,Identity]\\ninstances 4"];' in text
    assert '"decode" -> "cpu" [label="or"];' in text
    assert '\\"other\\"' in text
