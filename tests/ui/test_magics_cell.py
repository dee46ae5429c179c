"""The pure analysis of %%slurm cells, and the function that runs them."""

from __future__ import annotations

import pickle
import subprocess
import sys
import traceback

import cloudpickle
import pytest

from slurm_magics.ui.magics.cell import CellError, analyse_cell, make_cell_function


def names(source: str, **kwargs: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    analysis = analyse_cell(source, **kwargs)  # type: ignore[arg-type]
    return analysis.required, analysis.optional


@pytest.mark.parametrize(
    ("source", "required", "optional"),
    [
        ("x = 1\ny = x + z\ny", {"z"}, set()),  # assigned before read: not shipped
        ("import numpy as np\nnp.sum(a)", {"a"}, set()),  # imported in the cell
        ("print(len(data))", {"data"}, set()),  # builtins are never shipped
        ("x = x + 1", set(), {"x"}),  # read before the cell binds it
        ("if c:\n    y = 1\nprint(y)", {"c"}, {"y"}),  # bound on one path only
        ("for i in items:\n    total = total + i\ntotal", {"items"}, {"total"}),
        ("try:\n    import foo\nexcept ImportError:\n    foo = None\nfoo", set(), set()),
        ("[i * w for i in range(n)]", {"w", "n"}, set()),  # comprehensions run now
        ("(s := 3) + s", set(), set()),
        ("with open(p) as fh:\n    text = fh.read()\ntext", {"p"}, set()),
        ("del old", set(), {"old"}),
        # functions and lambdas read globals when called: the cell's own are not shipped
        ("def f(v):\n    return helper(v) + k\nk = 1\nf(3)", set(), {"helper"}),
        ("f = lambda t: t + g\nf(1)", set(), {"g"}),
        ("def f(a=default):\n    return a\nf()", {"default"}, set()),
        ("@deco\ndef f():\n    pass", {"deco"}, set()),
        (
            "def outer():\n    a = 1\n    def inner():\n        return a + b\n    return inner\n"
            "outer()()",
            set(),
            {"b"},
        ),
        ("class A(Base):\n    def m(self):\n        return r\nA().m()", {"Base"}, {"r"}),
        ("def f():\n    global g\n    g = 1\n    return g\nf()", set(), set()),
        ("match v:\n    case [first, *rest]:\n        first\n", {"v"}, set()),
    ],
)
def test_names_read_from_the_notebook(source: str, required: set[str], optional: set[str]) -> None:
    found_required, found_optional = names(source)
    assert set(found_required) == required
    assert set(found_optional) == optional


def test_the_map_variable_is_bound_by_the_magic() -> None:
    assert names("x * k", prebound=["x"]) == (("k",), ())


def test_last_expression_is_the_result() -> None:
    assert analyse_cell("a = 1\na").returns_value
    assert not analyse_cell("a = 1").returns_value
    assert not analyse_cell("for i in range(3):\n    i").returns_value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("%time x = 1", "no IPython magics"),
        ("!ls", "not valid Python"),
        ("await job", "async def"),
        ("return 3", "'return' outside function"),
    ],
)
def test_cells_that_cannot_run_there(source: str, message: str) -> None:
    with pytest.raises(CellError, match=message):
        analyse_cell(source)


def roundtrip(function: object) -> object:
    """What the cluster gets: cloudpickle by value, loaded without slurm_magics' help."""
    return pickle.loads(cloudpickle.dumps(function))


def test_cell_function_runs_the_cell_with_the_shipped_values() -> None:
    function = make_cell_function(
        "y = a * 2\nprint(y)\ny + b", name="t", returns_value=True, values={"a": 20}
    )
    assert roundtrip(function)({"b": 2}) == 42  # type: ignore[operator]
    # The cluster needs no slurm_magics: load and run it where importing it fails.
    script = (
        "import pickle, sys\n"
        "sys.modules['slurm_magics'] = None\n"
        "print(pickle.loads(sys.stdin.buffer.read())({'b': 2}))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        input=cloudpickle.dumps(function),
        capture_output=True,
        check=True,
    )
    assert ran.stdout.decode().split() == ["40", "42"]


def test_cell_function_for_a_map_binds_the_item() -> None:
    function = make_cell_function(
        "x * k", name="t", returns_value=True, values={"k": 3}, map_name="x"
    )
    loaded = roundtrip(function)
    assert [loaded(x, {}) for x in range(3)] == [0, 3, 6]  # type: ignore[operator]
    assert loaded(2, {"k": [1]}) == [1, 1]  # type: ignore[operator]  (jobs' values win)


def test_cell_without_final_expression_returns_none() -> None:
    function = make_cell_function("a = 1", name="t", returns_value=False, values={})
    assert roundtrip(function)({}) is None  # type: ignore[operator]


def test_cell_functions_see_cell_globals_and_tracebacks_show_cell_lines() -> None:
    source = "def f():\n    return g()\ndef g():\n    raise ValueError('boom')\nf()"
    function = make_cell_function(source, name="demo", returns_value=True, values={})
    with pytest.raises(ValueError, match="boom") as caught:
        roundtrip(function)({})  # type: ignore[operator]
    text = "".join(traceback.format_exception(caught.value))
    assert '<%%slurm cell demo>", line 4, in g' in text
    assert "raise ValueError('boom')" in text
