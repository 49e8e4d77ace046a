"""A content fingerprint of the code an asset computes with, beside its declared code version.

A code version is a label someone bumps: a release that changed nothing the asset runs bumps it
too, and then looks exactly like a deploy that changed the computation. Hashing the compiled
functions of the modules that hold the computation (the bytecode, constants, defaults and
closures of the functions as they are at run time) tells the two apart, so a diagnosis can say
"the version changed but the code it runs did not". Only the computation's own modules are
hashed, never the libraries they call: an upgrade of those is recorded as a package change.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["FINGERPRINT_KEY", "code_fingerprint"]

# The materialization metadata key that carries it.
FINGERPRINT_KEY = "code_fingerprint"
# Closures nest (a wrapper around a wrapper); deeper functions are named, not hashed.
_MAX_DEPTH = 3


def code_fingerprint(modules: Iterable[types.ModuleType]) -> str:
    """SHA-256 (16 hex digits) of every function bound in ``modules``, by name."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.__name__.encode())
        namespace = vars(module)
        for name in sorted(namespace):
            value = namespace[name]
            if isinstance(value, types.FunctionType):
                digest.update(f"\0{name}\0".encode())
                _function(digest, value, _MAX_DEPTH)
    return digest.hexdigest()[:16]


def _function(digest: Any, function: types.FunctionType, depth: int) -> None:
    _code(digest, function.__code__)
    digest.update(_stable_repr(function.__defaults__).encode())
    digest.update(_stable_repr(function.__kwdefaults__).encode())
    for cell in function.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, types.FunctionType):
            if depth > 0:
                _function(digest, value, depth - 1)
            else:
                digest.update(value.__qualname__.encode())
        else:
            digest.update(_stable_repr(value).encode())


def _code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code(digest, const)
        else:
            digest.update(_stable_repr(const).encode())


def _stable_repr(value: Any) -> str:
    """``repr`` that does not depend on the process: sets in sorted order, objects by type
    (their default repr holds a memory address)."""
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(_stable_repr(item) for item in value)) + "}"
    if isinstance(value, tuple | list):
        return "(" + ",".join(_stable_repr(item) for item in value) + ")"
    if isinstance(value, dict):
        items = sorted((_stable_repr(k), _stable_repr(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if value is None or isinstance(value, int | float | str | bytes | bool | complex):
        return repr(value)
    return type(value).__qualname__
