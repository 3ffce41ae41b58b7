"""SciPy's docstrings are left as written in the server: rewriting them is most of the time SciPy takes to import.

When SciPy 1.17 loads, about 600 of its functions and classes have their docstrings parsed as numpydoc
(`scipy._lib._docscrape`) and written again, to add a table of Array API support, a batching note, a
deprecation note or the `axis`/`nan_policy` parameters. For a scikit-learn model, whose import pulls in
`scipy.stats`, `scipy.optimize` and `scipy.special`, that parsing was a third of the CPU time from the
start to ready (see benchmarks/README.md). A model server never shows a docstring.

So, before it loads a model, the runtime puts a post-import hook on `scipy._lib._docscrape`: its two
parsers, `FunctionDoc` and `ClassDoc`, are replaced by one that parses nothing, drops whatever is added to
a section, and gives back the docstring as written. Every user of those parsers in SciPy 1.17 only
rewrites a docstring with them (read in 1.17.1: `_lib._array_api`, `_lib._util`, `_lib.deprecation`,
`stats._axis_nan_policy`, `stats._distribution_infrastructure`), so nothing but `__doc__` differs. A
version of SciPy not listed in VERIFIED_SCIPY is left alone: its parsers might serve more than
docstrings. To list another, read every importer of `scipy._lib._docscrape` in it first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader  # importlib.abc is not imported at run time: it is not free

DOCSCRAPE = "scipy._lib._docscrape"
VERIFIED_SCIPY = ("1.17",)  # major.minor


class _DocstringAsWritten:
    """Stands in for a numpydoc parser: sections start empty, what is put in them is dropped."""

    def __init__(self, obj: object, doc: str | None) -> None:
        self._text = doc if doc is not None else (getattr(obj, "__doc__", None) or "")
        self._sections: dict[str, Any] = {}

    def __getitem__(self, section: str) -> Any:
        return self._sections.setdefault(section, [])

    def __setitem__(self, section: str, value: Any) -> None:
        self._sections[section] = value

    def __str__(self) -> str:
        return self._text


class FunctionDocAsWritten(_DocstringAsWritten):
    def __init__(self, func: object, role: str = "func", doc: str | None = None, config: object = None) -> None:
        super().__init__(func, doc)

    def __str__(self) -> str:
        # SciPy's callers drop FunctionDoc's first line (a Sphinx directive naming the function).
        return "\n" + self._text


class ClassDocAsWritten(_DocstringAsWritten):
    def __init__(self, cls: object, doc: str | None = None, *args: object, **kwargs: object) -> None:
        super().__init__(cls, doc)


def keep_scipy_docstrings() -> None:
    """Installs the hook (once), unless SciPy's parser is already loaded: then there is nothing left to save."""
    if DOCSCRAPE in sys.modules or any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        return
    # A new list rather than the list changed in place: another thread may be walking the old one.
    sys.meta_path = [_AfterImport(DOCSCRAPE, _replace_parsers), *sys.meta_path]


def _replace_parsers(module: ModuleType) -> None:
    version = getattr(sys.modules.get("scipy.version"), "short_version", "")
    if ".".join(version.split(".")[:2]) not in VERIFIED_SCIPY:
        return
    if hasattr(module, "FunctionDoc") and hasattr(module, "ClassDoc"):
        setattr(module, "FunctionDoc", FunctionDocAsWritten)  # noqa: B010 - a module mypy cannot see
        setattr(module, "ClassDoc", ClassDocAsWritten)  # noqa: B010


class _AfterImport:
    """A meta path finder that runs `patch` on one module right after it has executed, then removes itself."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != self.name:
            return None
        sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
        for finder in sys.meta_path:  # whoever would have found it without this hook
            find_spec = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = find_spec(name, path, target) if find_spec else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = cast("Loader", _PatchingLoader(spec.loader, self.patch))
                return spec
        return None


class _PatchingLoader:
    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name: str) -> Any:  # get_code, get_source, is_package, resource readers
        return getattr(self.loader, name)
