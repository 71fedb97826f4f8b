"""Progress bars for long work (the one place tqdm is set up)."""

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["progress_factory"]


def progress_factory(enabled: bool) -> Callable[..., Any] | None:
    """A ``tqdm``-like factory (``factory(total=..., desc=...)``) writing to stderr, or None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    def factory(**kw):
        return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)

    return factory
