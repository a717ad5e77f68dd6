"""The torchpipe TOML dialect: loading, defaults, round trips, and every config error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.dag_kernels import Concat

import torchweir as tw
from torchweir.graphs.toml import load_toml, loads_toml

FIXTURES = Path(__file__).parent / "fixtures"
EVERY_KEY = FIXTURES / "every_key.toml"


def test_every_key_loads_with_defaults_inherited_and_overridden() -> None:
    graph = load_toml(EVERY_KEY)
    assert graph.entry == "root"
    assert graph.roots() == ("root",)
    root = graph.node("root")
    assert root.backend == "Torch[S[Identity,(swap)Identity,(or)Identity(suffix=unused)]]"
    assert root.next == (
        "run",
        "continue",
        "skip",
        "serial",
        "subgraph",
        "brk",
        "fallback",
        "swapped",
        "err",
    )
    assert (root.instance_num, root.batching_timeout, root.max_queue) == (2, 2.0, 128)
    assert (root.max, root.max_shape, root.min) == (4, "4x3x224x224", 1)
    assert root.params == {
        "precision": "fp16",
        "device_id": 0,
        "model": "model.onnx",
        "model::cache": "model.trt",
        "mean": "123.675, 116.28, 103.53",
        "std": "58.395, 57.120, 57.375",
        "resize_h": 224,
        "resize_w": "224",
        "color": "rgb",
    }
    join = graph.node("join")
    assert (join.instance_num, join.batching_timeout) == (1, 0.0)  # node keys win
    assert join.map == "serial_tail[result:data],subgraph[result:other]"
    assert graph.node("skip").backend == "Python[Identity]"
    assert graph.node("brk").backend == "Identity"  # torchpipe's default backend
    filters = {spec.name: spec.filter for spec in graph.nodes if spec.filter}
    assert set(filters.values()) == {
        "Run",
        "Continue",
        "Skip",
        "SerialSkip",
        "SubGraphSkip",
        "Break",
        "or",
        "swap",
        "Error",
    }
    assert root.kernel_params()["max"] == "4x3x224x224"
    assert root.kernel_params()["instance_num"] == 2


def test_strings_and_toml_numbers_mean_the_same() -> None:
    as_strings = loads_toml('[n]\ninstance_num = "4"\nmax = "8"\nbatching_timeout = "2.5"\n')
    as_numbers = loads_toml("[n]\ninstance_num = 4\nmax = 8\nbatching_timeout = 2.5\n")
    assert as_strings == as_numbers


@pytest.mark.parametrize("path", [EVERY_KEY, FIXTURES / "seed_fixed.toml"])
def test_to_toml_loads_back_to_an_equal_spec(path: Path) -> None:
    graph = load_toml(path)
    text = graph.to_toml()
    assert loads_toml(text) == graph
    assert loads_toml(text).to_toml() == text


def test_a_python_graph_and_its_toml_twin_build_equal_specs() -> None:
    g = tw.Graph()
    dec = g.node(
        "decode",
        "Torch[ S[ Identity , (or)Identity ] ]",
        instance_num=4,
        batching_timeout=2,
        resize_h=224,
    )
    left = g.node(
        "left",
        "tests.dag_kernels:Tag",
        suffix="L",
        batching_timeout=2,
        instance_num=4,
        resize_h=224,
    )
    right = g.node(
        "right", "Identity", filter="or", batching_timeout=2, instance_num=4, resize_h=224
    )
    join = g.node(
        "join",
        "tests.dag_kernels:Concat",
        map="left[result:data],right[result:other]",
        max="4x3x224x224",
        batching_timeout=2,
        instance_num=4,
        resize_h=224,
    )
    dec >> [left, right]
    [left, right] >> join
    toml = loads_toml(
        """
        batching_timeout = 2
        instance_num = 4
        resize_h = 224
        [decode]
        backend = "Torch[S[Identity,(or)Identity]]"
        next = "left,right"
        [left]
        backend = "tests.dag_kernels:Tag"
        suffix = "L"
        next = "join"
        [right]
        filter = "or"
        next = "join"
        [join]
        backend = "tests.dag_kernels:Concat"
        map = "left[result:data],right[result:other]"
        max = "4x3x224x224"
        """
    )
    assert g.spec() == toml
    assert loads_toml(g.spec().to_toml()) == toml


def test_python_kernel_objects_cannot_be_written_to_toml() -> None:
    g = tw.Graph()
    g.node("obj", Concat())
    with pytest.raises(tw.ConfigError, match=r"node 'obj'.*register it with tw\.register_kernel"):
        g.spec().to_toml()


# -- the seed quick start --------------------------------------------------------------

SEED = FIXTURES / "seed_quickstart.toml"


def test_the_seed_quick_start_with_its_typo_names_both_nodes() -> None:
    with pytest.raises(tw.ConfigError) as caught:
        load_toml(SEED)
    message = str(caught.value)
    assert "seed_quickstart.toml" in message
    assert "node 'cpu_decoder'" in message
    assert "key 'next'" in message
    assert "unknown node 'cpu_posprocess'; did you mean 'cpu_posdecoder'?" in message


def test_the_seed_quick_start_with_the_typo_fixed_loads_unchanged_otherwise() -> None:
    graph = load_toml(FIXTURES / "seed_fixed.toml")
    assert graph.names == ("cpu_decoder", "cpu_posdecoder", "resnet50")
    assert graph.node("cpu_decoder").next == ("cpu_posdecoder",)
    model = graph.node("resnet50")
    assert model.backend == "Torch[TensorrtTensor]"
    assert (model.min, model.max, model.min_shape, model.max_shape) == (
        1,
        4,
        "1x3x224x224",
        "4x3x224x224",
    )
    assert model.params["model::cache"] == "/you/model/path/resnet50.trt"
    assert all(spec.instance_num == 4 and spec.batching_timeout == 5 for spec in graph.nodes)
    assert graph.node("cpu_posdecoder").params["color"] == "rgb"


def test_the_fixture_is_the_seed_text_with_one_word_changed() -> None:
    seed = SEED.read_text()
    fixed = (FIXTURES / "seed_fixed.toml").read_text()
    assert fixed == seed.replace('next = "cpu_posprocess"', 'next = "cpu_posdecoder"')


# -- every validation error ------------------------------------------------------------


def error_of(text: str) -> str:
    with pytest.raises(tw.ConfigError) as caught:
        loads_toml(text, file="graph.toml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[decoder]\nnext = "resiser"\n[resizer]\n',
            "file 'graph.toml', node 'decoder', key 'next': next names unknown node "
            "'resiser'; did you mean 'resizer'?",
            id="unknown next",
        ),
        pytest.param(
            '[n]\nbackend = "S[DecodeMatt]"\n',
            "file 'graph.toml', node 'n', key 'backend': unknown backend 'DecodeMatt'",
            id="unknown backend",
        ),
        pytest.param(
            '[a]\nnext = "b"\n[b]\nnext = "c"\n[c]\nnext = "a"\n',
            "file 'graph.toml', node 'a', key 'next': the graph has a cycle: a -> b -> c -> a",
            id="cycle",
        ),
        pytest.param(
            "[a]\n[b]\n",
            "file 'graph.toml', key 'entry': the graph has 2 roots ('a', 'b') and no entry, "
            "so a request without node_name could not be routed; connect them with next, or "
            "set entry = 'a' at the top level",
            id="two roots",
        ),
        pytest.param(
            '[n]\ninstance_num = "many"\n',
            "file 'graph.toml', node 'n', key 'instance_num': expected an integer >= 1, got 'many'",
            id="bad number",
        ),
        pytest.param(
            '[n]\nmax = 2\nmin = "4"\n',
            "file 'graph.toml', node 'n', key 'max': expected max >= min, got max=2 < min=4",
            id="max below min",
        ),
        pytest.param(
            '[a]\nnext = "b,j"\n[b]\nnext = "j"\n[c]\n[j]\nmap = "b[result:data],c[result:x]"\n'
            'entry = "a"\n',
            "file 'graph.toml', node 'j', key 'map': map source 'c' is not a parent of this "
            "node (parents: a, b)",
            id="map of a non-parent",
        ),
        pytest.param(
            '[n]\nbackend = "Torch[S[DecodeMat,ResizeMat]"\n',
            "file 'graph.toml', node 'n', key 'backend': malformed backend expression: "
            "expected ']' at position 28, found the end",
            id="malformed brackets",
        ),
        pytest.param(
            '[a]\nnext = "j"\n[b]\nnext = "j"\n[j]\nentry = "a"\n',
            "node 'j', key 'map': has 2 parents (a, b) and no map",
            id="join without map",
        ),
        pytest.param(
            '[a]\nnext = "b"\n[b]\nfilter = "Skp"\n',
            "node 'b', key 'filter': unknown filter 'Skp'; did you mean 'Skip'?",
            id="unknown filter",
        ),
        pytest.param(
            '[a]\nfilter = "Skip"\n',
            "node 'a', key 'filter': a root node always runs; remove filter = 'Skip'",
            id="filter on a root",
        ),
        pytest.param(
            "[n]\ndata = 1\n",
            "node 'n', key 'data': 'data' is a request key, not a node setting",
            id="reserved key",
        ),
        pytest.param(
            '[n]\nbackend = "nosuchpkg.kernels:K"\n',
            "node 'n', key 'backend': cannot import backend 'nosuchpkg.kernels:K': "
            "No module named 'nosuchpkg'",
            id="import path",
        ),
        pytest.param(
            "[rec]\n[rec.2]\nbackend = 'Identity'\n",
            "node 'rec', key '2': nested table [rec.2] (a torchpipe logical node)",
            id="logical node",
        ),
        pytest.param("[n\n", "file 'graph.toml': not valid TOML", id="not toml"),
        pytest.param(
            'entry = "x"\n[a]\n', "key 'entry': entry names unknown node 'x'", id="unknown entry"
        ),
    ],
)
def test_config_errors_name_file_node_key_and_expectation(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_the_multi_root_error_for_the_exact_two_root_case_is_complete() -> None:
    message = error_of("[a]\n[b]\n")
    assert re.search(r"2 roots \('a', 'b'\)", message)


def test_a_missing_file_is_a_config_error() -> None:
    with pytest.raises(tw.ConfigError, match=r"file 'nope\.toml': cannot read the config"):
        load_toml("nope.toml")


def test_a_relative_model_path_resolves_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "model.onnx").write_bytes(b"onnx")
    config = tmp_path / "conf" / "graph.toml"
    config.write_text('entry = "m"\n[m]\nmodel = "model.onnx"\n[n]\nmodel = "elsewhere.onnx"\n')
    monkeypatch.chdir(tmp_path)
    graph = load_toml(Path("conf") / "graph.toml")
    assert graph.node("m").params["model"] == str((tmp_path / "conf" / "model.onnx").resolve())
    assert graph.node("n").params["model"] == "elsewhere.onnx"  # kept: not found beside it
