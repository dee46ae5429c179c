"""What a ``%%slurm`` cell reads from the notebook, and the function that runs it (pure).

The cell is analysed with ``ast``, in execution order: a name read at the top level before
the cell binds it comes from the notebook (``required``); a name the cell binds only on
some paths (an ``if`` branch, a loop, a ``try``) may come from the notebook (``optional``:
shipped when the notebook has it). Functions, lambdas and classes defined in the cell read
their globals when called: those the cell never binds are ``optional`` too. Builtins are
never shipped. The value of the last expression is the job's result.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from slurm_magics.ui.magics.scopes import (
    COMPREHENSIONS,
    bound_in,
    import_names,
    own_nodes,
    scope_global_reads,
    target_names,
)

__all__ = ["CellAnalysis", "CellError", "analyse_cell", "make_cell_function"]

_BUILTINS = frozenset(dir(builtins))


class CellError(ValueError):
    """The cell cannot run on the cluster as written; the message says why."""


@dataclasses.dataclass(frozen=True)
class CellAnalysis:
    """The names a cell reads from the notebook, and whether it ends with an expression."""

    required: tuple[str, ...]  # read before any binding: the notebook must have them
    optional: tuple[str, ...]  # read where the cell may not have bound them yet
    returns_value: bool  # the last statement is an expression: its value is the result

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional


# -- the top level, in execution order ----------------------------------------------------------
@dataclasses.dataclass
class _Flow:
    definite: set[str]  # bound on every path so far
    maybe: set[str]  # bound on some path so far

    def copy(self) -> _Flow:
        return _Flow(set(self.definite), set(self.maybe))

    def bind(self, names: Iterable[str]) -> None:
        for name in names:
            self.definite.add(name)
            self.maybe.add(name)

    def join(self, *branches: _Flow) -> None:
        """After a choice between ``branches``: bound on all of them, or maybe."""
        self.definite = set.intersection(*(b.definite for b in branches))
        self.maybe = set.union(self.maybe, *(b.maybe for b in branches))


class _TopLevel:
    """Walks the cell's statements in order, classifying each read of a name."""

    def __init__(self, prebound: Iterable[str], bound_anywhere: set[str]) -> None:
        self.required: dict[str, None] = {}
        self.optional: dict[str, None] = {}
        self.bound_anywhere = bound_anywhere
        self.star_import = False
        self.flow = _Flow(set(prebound), set(prebound))

    def read(self, name: str) -> None:
        if name in self.flow.definite or name in _BUILTINS:
            return
        if name in self.flow.maybe or self.star_import:
            self.optional.setdefault(name, None)
        else:
            self.required.setdefault(name, None)

    def late_reads(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.bound_anywhere and name not in _BUILTINS:
                self.optional.setdefault(name, None)

    # -- expressions -------------------------------------------------------------------------
    def expression(self, node: ast.AST | None) -> None:
        """Reads and walrus bindings of an expression, in evaluation order (near enough)."""
        if node is None:
            return
        for child in own_nodes([node]):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                self.read(child.id)
            elif isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self.flow.bind([child.target.id])
            elif isinstance(child, COMPREHENSIONS):  # runs now, in its own scope
                for name in scope_global_reads(child, frozenset()):
                    self.read(name)
            elif isinstance(child, ast.Lambda):  # runs when called
                self.late_reads(scope_global_reads(child, frozenset()))

    def targets(self, node: ast.AST) -> None:
        """An assignment target: subscripts and attributes read, names bound."""
        for child in ast.walk(node):
            if isinstance(child, ast.Subscript | ast.Attribute):
                self.expression(child.value)
                if isinstance(child, ast.Subscript):
                    self.expression(child.slice)
        self.flow.bind(target_names(node))

    # -- statements ---------------------------------------------------------------------------
    def block(self, statements: Sequence[ast.stmt]) -> None:
        for statement in statements:
            self.statement(statement)

    def branch(self, statements: Sequence[ast.stmt], start: _Flow) -> _Flow:
        saved, self.flow = self.flow, start.copy()
        self.block(statements)
        result, self.flow = self.flow, saved
        return result

    def try_statement(self, node: Any) -> None:
        flow = self.flow
        body = self.branch(node.body, flow)
        partial = _Flow(set(flow.definite), flow.maybe | body.maybe)  # a handler may run
        outcomes = [self.branch(node.orelse, body)]
        for handler in node.handlers:
            self.flow = partial
            self.expression(handler.type)
            self.flow = flow
            start = partial.copy()
            if handler.name:
                start.bind([handler.name])
            outcomes.append(self.branch(handler.body, start))
        flow.join(*outcomes)
        self.block(node.finalbody)

    def statement(self, node: ast.stmt) -> None:
        flow = self.flow
        if isinstance(node, ast.Assign):
            self.expression(node.value)
            for target in node.targets:
                self.targets(target)
        elif isinstance(node, ast.AugAssign):
            self.expression(node.target if isinstance(node.target, ast.Name) else None)
            self.expression(node.value)
            target = node.target
            if isinstance(target, ast.Name):
                target = ast.Name(target.id, ast.Store())
            self.targets(target)
        elif isinstance(node, ast.AnnAssign):
            self.expression(node.value)
            if node.value is not None:
                self.targets(node.target)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for part in ast.iter_child_nodes(node):  # decorators, defaults, bases: run now
                if part not in node.body:
                    self.expression(part)
            self.late_reads(scope_global_reads(node, frozenset()))
            flow.bind([node.name])
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                self.star_import = True
            flow.bind(import_names(node))
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):  # `del x` needs x
                    self.read(target.id)
                else:
                    self.expression(target)
                for name in target_names(target):
                    flow.definite.discard(name)
        elif isinstance(node, ast.If):
            self.expression(node.test)
            flow.join(self.branch(node.body, flow), self.branch(node.orelse, flow))
        elif isinstance(node, ast.For | ast.AsyncFor | ast.While):
            if isinstance(node, ast.While):
                self.expression(node.test)
                loop = flow.copy()
            else:
                self.expression(node.iter)
                loop = flow.copy()
                loop.bind(target_names(node.target))
            body = self.branch(node.body, loop)
            flow.maybe |= body.maybe
            flow.maybe |= self.branch(node.orelse, flow).maybe
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.try_statement(node)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expression(item.context_expr)
                if item.optional_vars is not None:
                    self.targets(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, ast.Match):
            self.expression(node.subject)
            cases = []
            for case in node.cases:
                start = flow.copy()
                for child in ast.walk(case.pattern):  # value patterns read names
                    if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                        self.read(child.id)
                start.bind(target_names(case.pattern))
                saved, self.flow = self.flow, start
                self.expression(case.guard)
                self.flow = saved
                cases.append(self.branch(case.body, start))
            flow.join(flow.copy(), *cases)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            pass  # no effect at the top level
        else:  # Expr, Assert, Raise, Pass, Break, Continue, ...
            for child in ast.iter_child_nodes(node):
                self.expression(child)


def analyse_cell(source: str, *, prebound: Iterable[str] = ()) -> CellAnalysis:
    """Find the names ``source`` reads from the notebook (``prebound``: bound by the magic)."""
    try:
        tree = ast.parse(source, "<%%slurm cell>")
        compile(tree, "<%%slurm cell>", "exec")  # `return`, `await`, `break` out of place
    except SyntaxError as error:
        hint = (
            "put it inside an `async def` and run that with asyncio.run(...)"
            if "await" in str(error.msg)
            else "a %%slurm cell runs as plain Python on the cluster: no IPython magics "
            "or !shell lines"
        )
        raise CellError(
            f"the cell is not valid Python (line {error.lineno}: {error.msg}); {hint}."
        ) from None
    declared = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    bound_anywhere = bound_in(tree.body) | declared | set(prebound)
    walker = _TopLevel(prebound, bound_anywhere)
    walker.block(tree.body)
    # Only a name the cell never binds must exist in the notebook; others are shipped if
    # the notebook has them (e.g. ``x = x + 1``, or a name bound in one branch only).
    required = tuple(name for name in walker.required if name not in bound_anywhere)
    optional = tuple(
        name for name in {**walker.required, **walker.optional} if name not in required
    )
    returns = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
    return CellAnalysis(required, optional, returns)


# -- the function that runs on the cluster ------------------------------------------------------
_CELL: tuple[str, str, bool, str | None, dict[str, Any]] = ("", "", False, None, {})


def _run_cell(*args: Any) -> Any:
    """Run the cell in a fresh namespace: ``args`` is ``(jobs,)``, or ``(item, jobs)`` for a
    ``--map`` task, ``jobs`` the values of the names that held jobs.

    Copied into a function of a module that does not exist (``__slurm_cell__``), so
    cloudpickle ships it by value: the cluster needs no slurm_magics.
    """
    import ast  # noqa: PLC0415
    import builtins  # noqa: PLC0415
    import linecache  # noqa: PLC0415

    source, filename, returns_value, map_name, values = _CELL
    # Tracebacks on the cluster then show the cell's own lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update(values)
    if map_name is not None:
        namespace[map_name] = args[0]
    namespace.update(args[-1])
    tree = ast.parse(source, filename)
    last = tree.body.pop() if returns_value else None
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102  (the user's own cell)
    if last is None:
        return None
    assert isinstance(last, ast.Expr)
    expression = ast.Expression(last.value)
    return eval(compile(expression, filename, "eval"), namespace)  # noqa: S307


def make_cell_function(
    source: str,
    *,
    name: str,
    returns_value: bool,
    values: dict[str, Any],
    map_name: str | None = None,
) -> Callable[..., Any]:
    """The function a job calls to run the cell.

    ``values`` (notebook names without jobs in them) travel inside the function, pickled
    once. The names that hold jobs are its argument, a dict (``jobs``), so the submission
    turns them into dependencies: call it as ``f(jobs)``, or ``f(item, jobs)`` for a
    ``--map`` task.
    """
    filename = f"<%%slurm cell {name}>"
    scope = {
        "__name__": "__slurm_cell__",
        "__builtins__": builtins,
        "_CELL": (source, filename, returns_value, map_name, dict(values)),
    }
    code = _run_cell.__code__.replace(co_filename="<slurm_magics cell runner>")
    function = types.FunctionType(code, scope, "slurm_cell")
    function.__qualname__ = "slurm_cell"
    function.__doc__ = f"The %%slurm cell {name!r}."
    return function
