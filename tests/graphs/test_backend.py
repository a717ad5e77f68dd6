from __future__ import annotations

import pytest

import torchweir as tw
from torchweir.graphs.backend import Backend, Step, parse_backend, render_backend


def test_nesting_sequences_filters_and_params() -> None:
    parsed = parse_backend(" Torch[ S[ (or)DecodeTensor , ResizeMat(resize_h=224) ] ] ")
    assert parsed == Backend(
        name="Torch",
        args=(
            Step(
                backend=Backend(
                    name="S",
                    args=(
                        Step(backend=Backend(name="DecodeTensor"), filter="or"),
                        Step(backend=Backend(name="ResizeMat", params=(("resize_h", "224"),))),
                    ),
                )
            ),
        ),
    )
    assert render_backend(parsed) == "Torch[S[(or)DecodeTensor,ResizeMat(resize_h=224)]]"
    assert parsed.names() == ["Torch", "S", "DecodeTensor", "ResizeMat"]
    assert parsed.filters() == ["or"]


@pytest.mark.parametrize(
    "text",
    [
        "Identity",
        "A[B[C]]",
        "Sequential[A,B,C]",
        "S[S[A,B],(or)S[C,D],StreamGuard]",
        "mypkg.kernels:MyKernel",
        "Python[py_model]",
        "A(key=value,model::cache=x.trt)",
    ],
)
def test_render_parses_back_to_the_same_expression(text: str) -> None:
    assert render_backend(parse_backend(text)) == text
    assert parse_backend(render_backend(parse_backend(text))) == parse_backend(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S[A,B", "expected ']' at position 5, found the end"),
        ("S[A,,B]", "expected a backend name at position 4, found ','"),
        ("A]", "expected the end of the expression at position 1, found ']'"),
        ("S[(or A]", "expected ')' at position 6, found 'A'"),
        ("", "expected a backend name at position 0, found the end"),
        ("S[]", "expected a backend name at position 2, found ']'"),
        ("A(x)", "expected '=' at position 3, found ')'"),
    ],
)
def test_malformed_expressions_point_at_the_problem(text: str, expected: str) -> None:
    with pytest.raises(tw.ConfigError) as caught:
        parse_backend(text, node="n", file="g.toml")
    message = str(caught.value)
    assert message.startswith("file 'g.toml', node 'n', key 'backend': malformed backend")
    assert expected in message
    assert message.endswith("^")


def test_a_non_string_backend_is_a_config_error() -> None:
    with pytest.raises(tw.ConfigError, match="expected a backend expression string, got int"):
        parse_backend(3)  # type: ignore[arg-type]
