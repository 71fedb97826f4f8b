"""Old import paths (``utility_jax.thurstonian``, ``utility_jax.pipeline``, ...) for one release.

The modules moved into the layer folders (``core/``, ``io/``, ``run/``). An old path still
imports, with a :class:`DeprecationWarning` naming the new one, and gives a module whose names
are looked up in the new module(s) on access. A meta-path finder keeps this to one file instead
of 30 stub modules at the top of the package (which would hide the floor plan again); importlib
has no aliasing of its own.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: old dotted name (under ``utility_jax.``) -> the new modules its names now live in, in order
MOVED: dict[str, tuple[str, ...]] = {
    **{
        m: (f"core.{m}",)
        for m in (
            "types data second_order simulate metrics graph triads prior_scales demography "
            "bayes reference"
        ).split()
    },
    "thurstonian": (
        "core.model",
        "core.likelihood",
        "core.fit",
        "core.laplace",
        "core.bootstrap",
    ),
    **{m: (f"io.{m}",) for m in ("outcomes", "datasets", "prompts", "assets")},
    **{
        m: (f"run.{m}",)
        for m in (
            "config agents pipeline runner evaluation uncertainty report cost incidents collect "
            "compare tracking progress"
        ).split()
    },
}


class _Loader(importlib.abc.Loader):
    def __init__(self, old: str, targets: tuple[str, ...]):
        self.old, self.targets = old, targets

    def create_module(self, spec):
        return None  # a plain new module object

    def exec_module(self, module):
        new = [f"utility_jax.{t}" for t in self.targets]
        warnings.warn(
            f"utility_jax.{self.old} moved to {' / '.join(new)}; the old path goes in the next "
            "release",
            DeprecationWarning,
            stacklevel=2,
        )
        mods = [importlib.import_module(n) for n in new]

        def __getattr__(name):
            for m in mods:
                if hasattr(m, name):
                    return getattr(m, name)
            raise AttributeError(f"module utility_jax.{self.old!s} has no attribute {name!r}")

        module.__getattr__ = __getattr__
        module.__all__ = [n for m in mods for n in getattr(m, "__all__", ())]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        pkg, _, name = fullname.partition(".")
        if pkg != "utility_jax" or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(name, MOVED[name]))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
