"""Files shipped with the package (outcome sets, prompt templates, analysis inputs, census
tables). :func:`asset_path` is the one place their location is computed, so every loader works
the same from a source checkout and from an installed wheel."""

from pathlib import Path

__all__ = ["asset_path"]

_ROOT = Path(__file__).resolve().parents[1] / "assets"


def asset_path(*parts: str) -> Path:
    """The path of a shipped file, e.g. ``asset_path("analyses", "political.yaml")``."""
    return _ROOT.joinpath(*parts)
