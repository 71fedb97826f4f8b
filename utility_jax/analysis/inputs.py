"""Reading the analyses' input files: the project's own (``"default"``) or the reference's."""

import json
from pathlib import Path
from typing import Any

import yaml

from utility_jax.io.assets import asset_path

__all__ = ["ASSETS", "read_input"]

#: the inputs shipped for the default runs (written for this project)
ASSETS = asset_path("analyses")


def read_input(path: str | Path, default: str, what: str) -> tuple[Path, Any]:
    """``(path, parsed content)`` of a JSON or YAML input file.

    ``"default"`` is the shipped ``assets/analyses/<default>``. A missing file raises
    :class:`FileNotFoundError` and unparseable content :class:`ValueError`, both naming the file.
    """
    path = ASSETS / default if str(path) == "default" else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the data
    try:
        if path.suffix in (".yaml", ".yml"):
            return path, yaml.safe_load(text)
        return path, json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {e}") from e
