"""A call's arguments as named columns (pure)."""

from __future__ import annotations

from typing import Any

from slurm_magics.core.arguments import call_columns, signature_of


def train(lr: float, depth: int = 3, *extra: Any, **options: Any) -> None: ...


def test_positional_and_keyword_arguments_take_the_parameter_names() -> None:
    signature = signature_of(train)
    assert call_columns(signature, (0.1,), {}) == {"lr": 0.1}  # defaults are not columns
    assert call_columns(signature, (), {"lr": 0.2, "depth": 5}) == {"lr": 0.2, "depth": 5}
    assert call_columns(signature, (0.1, 4, "a", "b"), {}) == {
        "lr": 0.1,
        "depth": 4,
        "extra": ("a", "b"),
    }


def test_keyword_catch_alls_spread_into_columns_and_never_hide_the_tables_own() -> None:
    signature = signature_of(train)
    assert call_columns(signature, (0.1,), {"seed": 7, "state": "x", "error": 1}) == {
        "lr": 0.1,
        "seed": 7,
        "arg.state": "x",
        "arg.error": 1,
    }

    def evaluate(result: int, task: str) -> None: ...

    assert call_columns(signature_of(evaluate), (1, "t"), {}) == {"arg.result": 1, "arg.task": "t"}


def test_calls_that_do_not_fit_and_unknown_signatures_keep_positions() -> None:
    assert call_columns(signature_of(train), (), {"depth": 2}) == {"depth": 2}  # lr missing

    def one(x: int) -> None: ...

    assert call_columns(signature_of(one), (1, 2), {"y": 3}) == {"arg0": 1, "arg1": 2, "y": 3}
    assert signature_of(max) is None  # a builtin without a signature
    assert call_columns(signature_of(max), (1, 2), {"key": "v"}) == {
        "arg0": 1,
        "arg1": 2,
        "key": "v",
    }
