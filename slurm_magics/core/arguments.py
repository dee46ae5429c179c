"""The arguments of a call as named columns (for ``arr.to_dataframe()``), pure.

``train.map([{"lr": 0.1}, {"lr": 0.2}])`` gives the columns ``lr``; ``square.map(range(3))``
the column ``x`` (the parameter's name); ``**kwargs`` spread into one column per key.
A call that does not fit the signature (it fails on the cluster) keeps positional
columns ``arg0``, ``arg1``, ... and its keywords.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["RESERVED", "call_columns", "signature_of"]

#: columns of a task table that arguments must not overwrite (they get an "arg." prefix)
RESERVED = frozenset({"task", "job_id", "state", "elapsed", "result", "error"})


def signature_of(function: Callable[..., Any]) -> inspect.Signature | None:
    """The function's signature, or None when Python cannot tell (some builtins)."""
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def call_columns(
    signature: inspect.Signature | None, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``{parameter name: value}`` for one call."""
    columns: dict[str, Any] = {}
    bound = None
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            bound = None
    if bound is None:
        columns = {f"arg{index}": value for index, value in enumerate(args)}
        columns.update(kwargs)
    else:
        for name, value in bound.arguments.items():
            if bound.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                columns.update(value)
            else:
                columns[name] = value
    return {(f"arg.{name}" if name in RESERVED else name): value for name, value in columns.items()}
