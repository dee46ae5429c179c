"""Which names a piece of Python binds, and which globals its nested scopes read (``ast``)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "COMPREHENSIONS",
    "bound_in",
    "import_names",
    "own_nodes",
    "scope_global_reads",
    "target_names",
]

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


# -- bindings -------------------------------------------------------------------------------
def target_names(node: ast.AST) -> Iterator[str]:
    """Names bound by an assignment target, a ``for`` target or a pattern."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store | ast.Del):
            yield child.id
        elif isinstance(child, ast.MatchAs | ast.MatchStar) and child.name:
            yield child.name
        elif isinstance(child, ast.MatchMapping) and child.rest:
            yield child.rest


def import_names(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    for alias in node.names:
        if alias.name != "*":
            yield alias.asname or alias.name.split(".", 1)[0]


def own_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node of a scope's body, not descending into nested scopes' bodies.

    A nested scope's name, decorators, defaults and bases belong to this scope; its
    body does not. A comprehension is yielded but not entered (its walrus targets, which
    bind here, are found by ``bound_in``).
    """
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            children: list[ast.AST] = [*node.decorator_list, node.args]
            if node.returns is not None:
                children.append(node.returns)
        elif isinstance(node, ast.ClassDef):
            children = [*node.decorator_list, *node.bases, *node.keywords]
        elif isinstance(node, ast.Lambda):
            children = [node.args]
        elif isinstance(node, ast.arguments):
            children = [d for d in (*node.defaults, *node.kw_defaults) if d is not None]
            children += [a.annotation for a in _arguments(node) if a.annotation is not None]
        elif isinstance(node, COMPREHENSIONS):
            children = [node.generators[0].iter]
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


def bound_in(body: Sequence[ast.AST]) -> set[str]:
    """Every name a scope binds anywhere in its own body (assignments, defs, imports, ...)."""
    bound: set[str] = set()
    for node in own_nodes(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(import_names(node))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.MatchMapping):
            bound.update(target_names(node))
        elif isinstance(node, COMPREHENSIONS):
            for inner in ast.walk(node):  # a walrus in a comprehension binds out here
                if isinstance(inner, ast.NamedExpr) and isinstance(inner.target, ast.Name):
                    bound.add(inner.target.id)
    return bound


def _declared(body: Sequence[ast.AST], kind: type[ast.Global | ast.Nonlocal]) -> set[str]:
    return {name for node in own_nodes(body) if isinstance(node, kind) for name in node.names}


def _arguments(args: ast.arguments) -> list[ast.arg]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return [arg for arg in every if arg is not None]


def _parameters(args: ast.arguments) -> set[str]:
    return {arg.arg for arg in _arguments(args)}


# -- reads from nested scopes (looked up when they run) --------------------------------------
def scope_global_reads(node: ast.AST, enclosing: frozenset[str]) -> set[str]:
    """Globals a function, lambda, class body or comprehension reads (``enclosing``:
    the names of enclosing function scopes, which closures see instead of globals)."""
    if isinstance(node, ast.Lambda):
        body: list[ast.AST] = [node.body]
        local = _parameters(node.args)
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        body = list(node.body)
        local = _parameters(node.args) | bound_in(body)
    elif isinstance(node, ast.ClassDef):
        body = list(node.body)
        local = bound_in(body)
    else:
        assert isinstance(node, COMPREHENSIONS)
        body = _comprehension_parts(node)
        local = set()
        for generator in node.generators:
            local.update(target_names(generator.target))
    explicit = _declared(body, ast.Global)
    local -= explicit | _declared(body, ast.Nonlocal)
    reads: set[str] = set()
    # A class body's names are not visible inside its methods.
    inner_enclosing = enclosing if isinstance(node, ast.ClassDef) else enclosing | local
    for child in own_nodes(body):
        if child is not node and isinstance(child, _SCOPES + COMPREHENSIONS):
            reads |= scope_global_reads(child, frozenset(inner_enclosing))
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
            name = child.id
            if name in explicit or (name not in local and name not in enclosing):
                reads.add(name)
    return reads


def _comprehension_parts(node: ast.AST) -> list[ast.AST]:
    """A comprehension's own parts, except the first iterable (evaluated outside)."""
    assert isinstance(node, COMPREHENSIONS)
    parts: list[ast.AST] = []
    if isinstance(node, ast.DictComp):
        parts += [node.key, node.value]
    else:
        parts.append(node.elt)
    for index, generator in enumerate(node.generators):
        if index:
            parts.append(generator.iter)
        parts += generator.ifs
    return parts
