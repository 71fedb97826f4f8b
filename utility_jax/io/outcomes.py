"""Outcome sets: load, validate, and generate (I/O shell).

On-disk formats (chosen by the file's ending):

* plain text (``.txt``): one outcome per line; blank lines and lines starting with ``#`` are
  skipped; category ``uncategorised``;
* CSV (``.csv``): a header with a ``text`` column and optional ``id`` and ``category`` columns
  (other columns are kept as extra fields);
* a JSON or YAML list of strings;
* the reference's: a JSON object mapping a category to a list of outcome strings
  (``options_hierarchical.json``); ids follow file order, category by category, as the
  reference flattens it;
* the project's own (JSON or YAML): ``{"outcomes": [{"id", "text", "category", ...}],
  "generate": {"money_anchors": {"template", "amounts", "category"}}}`` (a bare list of outcome
  objects is accepted too). Optional fields (``amount``, ...) are kept in ``Outcome.extra``.

Every validation error is an :class:`OutcomeSetError` naming the file and the entry.
"""

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from utility_jax.io.assets import asset_path
from utility_jax.io.datasets import data_dir

__all__ = ["Outcome", "OutcomeSet", "OutcomeSetError", "load_outcomes", "money_anchors", "DEFAULT"]

#: Name of the outcome set shipped with the package.
DEFAULT = "default"


class OutcomeSetError(ValueError):
    """A malformed outcome file or entry."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One outcome: its id in its file, its text, its category and any extra fields."""

    id: int
    text: str
    category: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OutcomeSet:
    """An ordered outcome set; position ``i`` is the index used in :class:`PairwiseData`."""

    outcomes: tuple[Outcome, ...]
    source: str = "<memory>"

    def __post_init__(self):
        _validate(list(self.outcomes), self.source)

    def __len__(self) -> int:
        return len(self.outcomes)

    def __getitem__(self, i: int) -> Outcome:
        return self.outcomes[i]

    @property
    def texts(self) -> list[str]:
        """Every outcome's text, in order."""
        return [o.text for o in self.outcomes]

    @property
    def categories(self) -> list[str]:
        """Every outcome's category, in order."""
        return [o.category for o in self.outcomes]

    @property
    def ids(self) -> list[int]:
        """Every outcome's id, in order."""
        return [o.id for o in self.outcomes]

    def index_of(self, text: str) -> int:
        """The position of the outcome with this text; a ``KeyError`` names the file."""
        for i, o in enumerate(self.outcomes):
            if o.text == text:
                return i
        raise KeyError(f"{self.source}: no outcome with text {text!r}")

    def subset(self, indices: Sequence[int]) -> "OutcomeSet":
        """The outcomes at these positions, in this order (ids kept)."""
        return OutcomeSet(tuple(self.outcomes[i] for i in indices), source=self.source)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per outcome (id, text, category, extra fields), for JSON and CSV."""
        return [
            {"id": o.id, "text": o.text, "category": o.category, **o.extra} for o in self.outcomes
        ]

    @classmethod
    def from_texts(cls, texts: Sequence[str], category: str = "uncategorised") -> "OutcomeSet":
        """An outcome set from plain texts, ids 0..n-1, one category."""
        return cls(tuple(Outcome(i, t, category) for i, t in enumerate(texts)))


def _validate(outcomes: list[Outcome], source: str) -> None:
    if not outcomes:
        raise OutcomeSetError(f"{source}: the outcome set is empty")
    seen_text: dict[str, int] = {}
    seen_id: dict[int, int] = {}
    for k, o in enumerate(outcomes):
        where = f"{source}: outcome {k} (id={o.id!r})"
        if not isinstance(o.text, str):
            raise OutcomeSetError(f"{where}: text must be a string, got {type(o.text).__name__}")
        if not o.text.strip():
            raise OutcomeSetError(f"{where}: text is empty")
        if not isinstance(o.category, str):
            raise OutcomeSetError(f"{where}: category must be a string")
        if not isinstance(o.id, int) or isinstance(o.id, bool):
            raise OutcomeSetError(f"{where}: id must be an integer")
        if o.text in seen_text:
            raise OutcomeSetError(
                f"{where}: duplicate outcome text (same as outcome {seen_text[o.text]}): {o.text!r}"
            )
        if o.id in seen_id:
            raise OutcomeSetError(f"{where}: duplicate id (same as outcome {seen_id[o.id]})")
        seen_text[o.text] = k
        seen_id[o.id] = k


def money_anchors(
    template: str, amounts: Sequence[float], *, category: str = "Money", start_id: int = 0
) -> list[Outcome]:
    """Outcomes from a template with ``{amount}``, e.g. ``"You receive ${amount} ..."``.

    Amounts are written with thousands separators (``$1,000``); each outcome keeps ``amount``.
    """
    if "{amount}" not in template:
        raise OutcomeSetError(f"money anchor template lacks '{{amount}}': {template!r}")
    out = []
    for k, a in enumerate(amounts):
        txt = f"{a:,.0f}" if float(a).is_integer() else f"{a:,.2f}"
        out.append(
            Outcome(start_id + k, template.format(amount=txt), category, {"amount": float(a)})
        )
    return out


def _read(path: Path) -> Any:
    if not path.exists():
        hint = ""
        if data_dir() in path.absolute().parents:
            hint = ": the paper's data is not here; run `utility-jax data fetch`"
        raise OutcomeSetError(f"{path}: outcome file not found{hint}")
    if path.is_dir():
        raise OutcomeSetError(f"{path}: is a folder, not an outcome file")
    try:
        text = path.read_text(
            encoding="utf-8-sig"
        )  # a byte-order mark (Excel, Notepad) is not text
    except UnicodeDecodeError as e:
        raise OutcomeSetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    if path.suffix == ".txt":
        return _from_text(text, path)
    if path.suffix == ".csv":
        return _from_csv(text, path)
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise OutcomeSetError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {e}") from e


def _from_text(text: str, path: Path) -> list[dict]:
    """One outcome per non-blank, non-``#`` line."""
    out, seen = [], {}
    for n, line in enumerate(text.splitlines(), start=1):
        t = line.strip()
        if t and not t.startswith("#"):
            if t in seen:
                raise OutcomeSetError(f"{path}: line {n}: duplicate of line {seen[t]}: {t!r}")
            seen[t] = n
            out.append({"text": t})
    return out


def _from_csv(text: str, path: Path) -> list[dict]:
    """Rows of a CSV with a ``text`` column (optional ``id``, ``category``; others kept)."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "text" not in reader.fieldnames:
        raise OutcomeSetError(
            f"{path}: line 1: the header needs a 'text' column (found {reader.fieldnames})"
        )
    out = []
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise OutcomeSetError(f"{path}: line {line}: expected {len(reader.fieldnames)} fields")
        item = {k: v for k, v in row.items() if k != "id"}
        if row.get("id", "") != "":
            try:
                item["id"] = int(row["id"])
            except ValueError:
                raise OutcomeSetError(
                    f"{path}: line {line}: id must be an integer, got {row['id']!r}"
                ) from None
        if not item["text"].strip():
            raise OutcomeSetError(f"{path}: line {line}: text is empty")
        out.append(item)
    return out


def _from_reference(obj: dict, source: str) -> list[Outcome]:
    out = []
    for cat, items in obj.items():
        if not isinstance(items, list):
            raise OutcomeSetError(f"{source}: category {cat!r} must map to a list of strings")
        for j, t in enumerate(items):
            if not isinstance(t, str):
                raise OutcomeSetError(
                    f"{source}: category {cat!r} entry {j}: text must be a string, got "
                    f"{type(t).__name__}"
                )
            out.append(Outcome(len(out), t, str(cat)))
    return out


def _from_project(obj: Any, source: str) -> list[Outcome]:
    items = obj if isinstance(obj, list) else obj.get("outcomes", [])
    if not isinstance(items, list):
        raise OutcomeSetError(f"{source}: 'outcomes' must be a list")
    out = []
    for k, it in enumerate(items):
        if isinstance(it, str):  # a plain list of outcome strings
            it = {"text": it}
        if not isinstance(it, dict):
            raise OutcomeSetError(
                f"{source}: outcome {k} must be a string or an object with 'text', got "
                f"{type(it).__name__}"
            )
        if "text" not in it:
            raise OutcomeSetError(f"{source}: outcome {k} has no 'text' field")
        extra = {x: v for x, v in it.items() if x not in ("id", "text", "category")}
        out.append(Outcome(it.get("id", k), it["text"], it.get("category", "uncategorised"), extra))
    gen = {} if isinstance(obj, list) else (obj.get("generate") or {})
    if "money_anchors" in gen:
        spec = gen["money_anchors"]
        missing = {"template", "amounts"} - set(spec)
        if missing:
            raise OutcomeSetError(f"{source}: generate.money_anchors lacks {sorted(missing)}")
        start = max((o.id for o in out if isinstance(o.id, int)), default=-1) + 1
        out += money_anchors(
            spec["template"],
            spec["amounts"],
            category=spec.get("category", "Money"),
            start_id=start,
        )
    return out


def load_outcomes(path: str | Path = DEFAULT, *, limit: int | None = None) -> OutcomeSet:
    """Load an outcome set: ``"default"`` (shipped), or a reference/project file.

    ``limit`` keeps the first ``limit`` outcomes (quick runs; the ``outcomes.limit`` setting).

    Raises:
      OutcomeSetError: missing file, bad JSON/YAML, empty set, duplicate outcomes or ids,
        non-string text; the message names the file and the entry.
    """
    if limit is not None:
        full = load_outcomes(path)
        return full.subset(range(min(limit, len(full))))
    if str(path) == DEFAULT:
        return load_outcomes(asset_path("outcomes_default.yaml"))
    path = Path(path)
    obj = _read(path)
    src = str(path)
    if obj is None:
        raise OutcomeSetError(f"{src}: the outcome set is empty")
    if (
        isinstance(obj, dict)
        and "outcomes" not in obj
        and all(isinstance(v, list) for v in obj.values())
    ):
        outcomes = _from_reference(obj, src)
    elif isinstance(obj, (dict, list)):
        outcomes = _from_project(obj, src)
    else:
        raise OutcomeSetError(f"{src}: expected an object or a list, got {type(obj).__name__}")
    return OutcomeSet(tuple(outcomes), source=src)
