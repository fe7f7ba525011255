"""A package's public names imported on first use (PEP 562), so that importing it stays light."""

from __future__ import annotations

import importlib
import operator
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose names live in its modules.

    Args:
        package: the package's ``__name__``.
        exports: public name -> ``module`` holding it under that name, or ``module:attribute.path``.

    Returns:
        The package's ``__getattr__`` (imports the name's module on first use and keeps the value
        in the package) and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, path = exports[name].partition(":")
        value = operator.attrgetter(path or name)(importlib.import_module(module))
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
