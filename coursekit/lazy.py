"""A package whose names are imported on first use, so that importing it costs nothing it does not use.

A chapter's `__init__.py` re-exports its models, its training loop and its
settings. Imported eagerly, `python -m ch03_gpt --help` would import torch
(seconds, and hundreds of megabytes) to print a page of text. With

    __getattr__, __dir__ = lazy_exports(__name__, {"model": ("GPT", "Block"), ...})

`from ch03_gpt import GPT` imports `ch03_gpt.model` when the name is first
asked for (PEP 562), and `ch03_gpt.model` reaches the submodule as it did when
the package imported everything.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


class _LazyPackage(types.ModuleType):
    """A package module that keeps an exported name where the import system would bind a submodule of the
    same name over it (`ch03_gpt.generate`: the function, not the module ch03_gpt/generate.py)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy_sources", {}):
            return
        super().__setattr__(name, value)


def lazy_exports(package: str, sources: dict[str, tuple[str, ...]]):
    """The `__getattr__` and `__dir__` of `package`: each name of `sources` (submodule -> the names it gives,
    relative to the package) is imported from its submodule on first use, then kept. Every name of the
    package's `__all__` must have a source."""
    module = sys.modules[package]
    where = {name: f"{package}.{sub}" for sub, names in sources.items() for name in names}
    missing = sorted(set(getattr(module, "__all__", ())) - set(where))
    if missing:
        raise ImportError(f"{package}.__all__ names {', '.join(missing)} without a module to import them from")
    module._lazy_sources = where
    module.__class__ = _LazyPackage

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")  # a submodule, as `import package.name` gives
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module.__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(where))

    return __getattr__, __dir__
