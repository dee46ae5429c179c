"""Decide which modules travel by value: the ones that live beside the notebook.

Installed packages (the standard library, site-packages) are imported by name on the
cluster. A module of the user's own that is not installed (``helpers.py`` next to the
notebook, a test module) would fail to import there, so cloudpickle ships it by value.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterable

import cloudpickle

__all__ = ["ship_local_modules"]

_NEVER_BY_VALUE = ("slurm_magics", "__main__", "__mp_main__")


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(sysconfig.get_paths().values())
    roots.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    return tuple(sorted(os.path.realpath(root) + os.sep for root in roots if root))


@functools.cache
def _is_local(name: str, path: str) -> bool:
    if name.split(".", 1)[0] in _NEVER_BY_VALUE:
        return False
    real = os.path.realpath(path)
    return not real.startswith(_installed_roots())


_registered: set[str] = set()


def ship_local_modules(by_reference: Iterable[str] = ()) -> None:
    """Register every imported, not-installed, top-level module to be pickled by value,
    except ``by_reference``: modules the job's packaging installs (a wheel's packages)."""
    for name in by_reference:
        module = sys.modules.get(name)
        if name in _registered and isinstance(module, types.ModuleType):
            cloudpickle.unregister_pickle_by_value(module)
            _registered.discard(name)
    skip = set(by_reference)
    for name, module in list(sys.modules.items()):
        if "." in name or name in _registered or not isinstance(module, types.ModuleType):
            continue
        if name in skip:
            continue
        path = getattr(module, "__file__", None)
        if not path or not _is_local(name, path):
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:  # not importable by that name: leave it to cloudpickle
            continue
        _registered.add(name)
