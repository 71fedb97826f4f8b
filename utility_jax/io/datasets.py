"""The paper's public inputs: fetched on request (``utility-jax data fetch``), checked, found.

The reference's data files (outcome sets, lotteries, Markov processes, questions, policies,
entities, capability scores), the source files its prompt templates and grids are read from, and
the two real model results of a public fork are downloaded at pinned commits, each checked
against its sha256, into a data folder:

* ``$UTILITY_JAX_DATA`` when set (``UTILITY_JAX_ANCHOR_DATA`` is read too, for older set-ups);
* else the user cache folder (``platformdirs``), ``.../utility_jax/emergent-values-313ec33``.

The folder keeps the reference's relative paths, so ``conf/`` reaches a file as
``${paths.data}/utility_analysis/...``. After the download, :func:`extract_derived` writes
``derived/`` (the exchange-rate option space and the time-discounting grid, read from the source
files with ``ast.literal_eval``: no reference code is run). This is the package's only download;
nothing else in it touches the network.
"""

import ast
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "SOURCES",
    "FILES",
    "data_dir",
    "data_file",
    "register_resolvers",
    "PaperDataMissing",
    "FetchReport",
    "fetch",
    "extract_literals",
    "sha256_file",
    "extract_derived",
    "paper_templates",
    "reference_dollar_amounts",
    "TEMPLATE_SOURCES",
]

#: repository tag -> (repository, pinned commit)
SOURCES = {
    "UP": ("centerforaisafety/emergent-values", "313ec33b9972f3d04bba084c65d0d7fa66009a9f"),
    "RR": ("notrichardren/emergent-values-multimodal", "b105ebb32580cff4b487a09dccfe108f8a024616"),
}
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_RR = "utility_analysis/shared_utilities/text/options_hierarchical"
_FORK = "forks/notrichardren+emergent-values-multimodal/" + _RR

#: relative path in the data folder -> (source tag, path in that repository, sha256)
FILES: dict[str, tuple[str, str, str]] = {
    p: ("UP", p, h)
    for p, h in {
        "utility_analysis/shared_options/options_hierarchical.json": "da5142bce39021a828ca0c353939dd7045cae89ad415b5d5919018f50f98d334",
        "utility_analysis/shared_options/options_testing.json": "918c6fd93c6c0e163b5be93781ceb8f4e02b42cdb2970c47b5dbd62a3cd0b8cd",
        "utility_analysis/capability_scores.csv": "49d1cad87498af98158ba049bdd6c1d5db328081335757579f0b6e1032adec94",
        "utility_analysis/experiments/expected_utility_implicit/implicit_lotteries/options.json": "d25cc11caf421c17f08ba07edc3afb01fe39a9bc82648491a98888dcc66b2775",
        "utility_analysis/experiments/instrumental_values/markov_processes.json": "fdeea617e69f8152b149127aa81a909cecd6ed41235d3dda6e486c8419f17ed5",
        "utility_analysis/experiments/instrumental_values/markov_processes_unnatural.json": "41c7f29230a8bbe5cd1611f5858d306249862b0e9256e79516a8d887ad5ffdd6",
        "utility_analysis/experiments/maximization/util_max_questions.json": "7b391102abf402233c6272ab891d681a2b0893d95b246b29fb54adc4bdef71ba",
        "utility_analysis/experiments/political_values/options/entities.json": "944a2496e51f796d8fe946aa36559e4ce1ac1c373887f189b57bc418409f87b2",
        "utility_analysis/experiments/political_values/options/policy_options.json": "e8e8047999e8d1a4ab448c87c2a5d7d36fe7edbdbdb51088e92d5e32903b7c70",
        # source files the derived inputs and the prompt templates are read from
        "utility_analysis/compute_utilities/templates.py": "95c2703da51021a1f4cbf53819c2ff6b8dc0ea0fe5d14ca0ae141493026ea72c",
        "utility_analysis/experiments/exchange_rates/evaluate_exchange_rates.py": "6333c8a7208194a43042d3234576f71ee9ceb95d4100ea4a2abba9f0399b8fc0",
        "utility_analysis/experiments/time_discounting/evaluate_time_discounting_nonparametric.py": "54608a7f38a50e24b00c8c75c64b96e5fffa3683d4de9bc1ede12b84fcbe0cfe",
        "utility_analysis/experiments/political_values/evaluate_political_values.py": "78247f365d5013756bd4a5881117696fcf8888de15616b2a8ff7214ff95f9f0e",
        "utility_analysis/experiments/power_seeking/evaluate_power_seeking.py": "d2f596b8c7bd4755ceca3742e67b9944122440049ab3287bb7cbbec4d19d282b",
        "utility_analysis/experiments/preference_preservation/evaluate_preference_preservation.py": "00bd2194258be694ff455b489f30917e95b02fdc35af2784eced662b1d531f1a",
        "utility_analysis/experiments/maximization/utility_maximization.py": "04c5e9f3b0b9ee6101012aea379f0a8b5198ace68677430c4cfb8e95b6516fa4",
        "utility_analysis/experiments/transitivity/evaluate_transitivity.py": "21826e78b09f1fa513f1b7ad9305221b6cac592858ff9b91ca4a8ba0b3d79687",
        "utility_analysis/experiments/expected_utility/evaluate_expected_utility_property.py": "bce92c6fabf061ccf115da9f4bb3e48b9ef257713ff0f9ef841870612a36dad1",
    }.items()
} | {
    f"{_FORK}/{m}/results_utilities_{m}.json": ("RR", f"{_RR}/{m}/results_utilities_{m}.json", h)
    for m, h in {
        "llama-2-7b-instruct": "96f9b8b2ae551e79b243141c9160495eb280f80143926d4897fb9df5c20fc3ec",
        "qwen25-vl-7b-instruct": "0d75c4eaafa6e88969f98e1afc6bb54130fcd5b32ce2fe122b4b026a3b3559c8",
    }.items()
}

#: our template name (``assets/prompt_templates.yaml``) -> (source file under
#: ``utility_analysis/``, variable): where each paper template comes from
TEMPLATE_SOURCES: dict[str, tuple[str, str]] = {
    "default": ("compute_utilities/templates.py", "comparison_prompt_template_default"),
    "reasoning": ("compute_utilities/templates.py", "comparison_prompt_template_reasoning_default"),
    "lottery": (
        "experiments/expected_utility/evaluate_expected_utility_property.py",
        "comparison_prompt_template",
    ),
    "policy_ai": ("experiments/political_values/evaluate_political_values.py", "AI_PROMPT"),
    "policy_politician": (
        "experiments/political_values/evaluate_political_values.py",
        "POLITICIAN_PROMPT",
    ),
    "policy_platform": (
        "experiments/political_values/evaluate_political_values.py",
        "PLATFORM_PROMPT",
    ),
    "policy_ai_reasoning": (
        "experiments/political_values/evaluate_political_values.py",
        "AI_PROMPT_REASONING",
    ),
    "power": ("experiments/power_seeking/evaluate_power_seeking.py", "comparison_prompt_power"),
    "power_reasoning": (
        "experiments/power_seeking/evaluate_power_seeking.py",
        "comparison_prompt_power_with_reasoning",
    ),
    "future_values": (
        "experiments/preference_preservation/evaluate_preference_preservation.py",
        "difference_comparison_prompt_template",
    ),
    "time_discounting": (
        "experiments/time_discounting/evaluate_time_discounting_nonparametric.py",
        "prompt_template",
    ),
    "maximization": (
        "experiments/maximization/utility_maximization.py",
        "UTIL_MAX_PROMPT_OPTIONS_TEMPLATE",
    ),
}

_FETCH_HINT = "run `utility-jax data fetch` (or set UTILITY_JAX_DATA to a folder holding them)"


class PaperDataMissing(FileNotFoundError):
    """A file of the paper's inputs is not in the data folder."""


def data_dir() -> Path:
    """The data folder (see the module docstring); it need not exist yet."""
    for var in ("UTILITY_JAX_DATA", "UTILITY_JAX_ANCHOR_DATA"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    import platformdirs

    return (
        Path(platformdirs.user_cache_dir("utility_jax")) / f"emergent-values-{SOURCES['UP'][1][:7]}"
    )


def register_resolvers() -> None:
    """``${uj_data_dir:}`` in configs: the data folder (:func:`data_dir`), read when resolved."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("uj_data_dir"):
        OmegaConf.register_new_resolver("uj_data_dir", lambda: str(data_dir()))


def data_file(relpath: str) -> Path:
    """The path of one of the paper's files; :class:`PaperDataMissing` names the fix if absent."""
    p = data_dir() / relpath
    if not p.exists():
        raise PaperDataMissing(f"{p}: the paper's data is not here: {_FETCH_HINT}")
    return p


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FetchReport:
    """What :func:`fetch` did: files written, already present (checksum verified), bytes."""

    dest: Path
    written: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    n_bytes: int = 0
    derived: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: files written, present and derived, and where."""
        return (
            f"{len(self.written)} files written ({self.n_bytes:,} bytes), {len(self.present)} "
            f"already present and verified, {len(self.derived)} derived files; in {self.dest}"
        )


def _url(base_url: str, tag: str, path: str) -> str:
    repo, commit = SOURCES[tag]
    return base_url.format(repo=repo, commit=commit, path=path, tag=tag)


#: no file of the paper's inputs is near this size; a body past it is refused while it streams
MAX_FILE_BYTES = 64 * 2**20
_CHUNK = 2**16


def _download(
    url: str, timeout: float, to: Path, *, deadline_s: float, max_bytes: int
) -> tuple[str, int]:
    """Stream ``url`` into the file ``to``; its sha256 and size. ``timeout`` bounds each read,
    ``deadline_s`` the whole download (a server trickling bytes cannot hold it forever), and
    ``max_bytes`` its size (checked on the declared length and while reading: nothing larger
    is ever held in memory)."""
    import time

    h, n, start = hashlib.sha256(), 0, time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(to, "wb") as fh:  # noqa: S310
            declared = r.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ValueError(f"{url}: {int(declared):,} bytes declared, over {max_bytes:,}")
            while chunk := r.read1(_CHUNK):  # what has arrived: a trickle cannot block it
                n += len(chunk)
                if n > max_bytes:
                    raise ValueError(f"{url}: more than {max_bytes:,} bytes; refused")
                if time.monotonic() - start > deadline_s:
                    raise ConnectionError(
                        f"{url}: not finished after {deadline_s:.0f} s ({n:,} bytes so far); "
                        "the server is too slow (--deadline to wait longer)"
                    )
                h.update(chunk)
                fh.write(chunk)
    except urllib.error.HTTPError as e:
        e.close()  # the error carries the open response
        raise RuntimeError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(
            f"cannot reach {url} ({reason}): check the network, or copy the files and set "
            "UTILITY_JAX_DATA"
        ) from None
    return h.hexdigest(), n


def _inside(dest: Path, rel: str) -> Path:
    """``dest / rel``, refusing a path that leaves ``dest`` (``..``, an absolute path)."""
    target = (dest / rel).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise ValueError(f"{rel!r}: not a path inside the data folder {dest}; refused")
    return target


def fetch(
    dest: str | Path | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    files: dict[str, tuple[str, str, str]] | None = None,
    timeout: float = 30.0,
    deadline_s: float = 600.0,
    max_bytes: int = MAX_FILE_BYTES,
    log=None,
) -> FetchReport:
    """Download the paper's inputs into ``dest`` (default :func:`data_dir`), checking each file.

    ``base_url`` is a format string with ``{repo}``, ``{commit}``, ``{path}`` (and ``{tag}``).
    A file already present with the right sha256 is kept; a download whose sha256 differs is
    refused (nothing is written for it) with an error naming the file, the URL and both hashes.
    Each file streams into a temporary file, then is renamed into place (mode 0644), so an
    interrupted fetch leaves no partial file. ``timeout`` bounds each read, ``deadline_s`` each
    file, ``max_bytes`` each file's size; a name in ``files`` that leaves ``dest`` is refused.
    Then :func:`extract_derived` writes ``derived/``.
    """
    dest = Path(dest) if dest is not None else data_dir()
    files = FILES if files is None else files
    report = FetchReport(dest)
    for rel, (tag, path, sha) in files.items():
        target = _inside(dest, rel)
        if target.exists() and sha256_file(target) == sha:
            report.present.append(rel)
            continue
        url = _url(base_url, tag, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        try:
            got, size = _download(
                url, timeout, Path(tmp), deadline_s=deadline_s, max_bytes=max_bytes
            )
            if got != sha:
                raise ValueError(
                    f"{rel}: sha256 mismatch for {url}: expected {sha}, got {got}; not written"
                )
            os.chmod(tmp, 0o644)  # a data file others on the machine may read, as a download is
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        report.written.append(rel)
        report.n_bytes += size
        if log is not None:
            log(f"  {rel} ({size:,} bytes)")
    report.derived = extract_derived(dest)
    return report


# ------------------------------------------------------------------------------- extraction
def extract_literals(source: str, names: list[str], *, origin: str = "<source>") -> dict:
    """Values of top-level ``NAME = <literal>`` assignments, read with ``ast.literal_eval`` (no
    code is run); a missing name or a non-literal value is an error naming ``origin``."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id in names:
                    try:
                        found[t.id] = ast.literal_eval(node.value)
                    except ValueError as e:
                        raise ValueError(f"{origin}: {t.id} is not a literal ({e})") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{origin}: no top-level assignment of {missing}")
    return found


def time_discounting_grid() -> dict:
    """The reference's time-discounting grid, from its formulas (in
    ``evaluate_time_discounting_nonparametric.py``): 60 delays ``linspace(0, 60, 60)`` cast to
    int (so 59 is missing), 30 multipliers ``logspace(log10 0.5, log10 30, 30)``, and delayed
    amounts ``round(1000 * m, -2)`` against $1000 now."""
    delays = np.linspace(0, 60, num=60, dtype=int)
    mult = np.logspace(np.log10(0.5), np.log10(30), num=30)
    return {
        "baseline_amount": 1000,
        "baseline_time_months": 0,
        "time_delays_months": [int(d) for d in delays],
        "amount_multipliers": [float(m) for m in mult],
        "delayed_amounts": [int(round(1000 * m, -2)) for m in mult],
    }


_EXCHANGE_SRC = "utility_analysis/experiments/exchange_rates/evaluate_exchange_rates.py"


def reference_dollar_amounts(n: int = 100, max_exponent: float = 9.0) -> list[int]:
    """The reference's dollar-anchor rule on ``n`` log-spaced points from $1 to $10^max_exponent:
    amounts up to 10 kept, larger ones rounded to two significant digits (at least to tens),
    deduplicated and sorted (``n = 100`` gives its 92 anchors)."""
    out = set()
    for d in np.logspace(0, max_exponent, n):
        if d > 10:
            d = round(d, -max(1, int(np.floor(np.log10(d))) - 1))
        out.add(int(d))
    return sorted(out)


def paper_templates(root: str | Path) -> dict[str, str]:
    """Our template name -> the paper's text, from ``root/derived/prompt_templates.json`` (what
    ``assets/prompt_templates.yaml`` reproduces; a test checks they are equal)."""
    obj = json.loads((Path(root) / "derived" / "prompt_templates.json").read_text())
    return {name: obj["templates"][f][v] for name, (f, v) in TEMPLATE_SOURCES.items()}


def _extract_templates(root: Path) -> dict | None:
    by_file: dict[str, list[str]] = {}
    for f, v in TEMPLATE_SOURCES.values():
        by_file.setdefault(f, []).append(v)
    out = {}
    for f, names in by_file.items():
        src = root / "utility_analysis" / f
        if not src.exists():
            return None
        out[f] = extract_literals(src.read_text(), names, origin=str(src))
    repo, commit = SOURCES["UP"]
    return {"source_repo": repo, "commit": commit, "templates": out}


def extract_derived(root: str | Path) -> list[str]:
    """Write ``root/derived/``: the paper's prompt templates (every template of
    :data:`TEMPLATE_SOURCES`), the exchange-rate option space (``X_values``, ``N_values``,
    ``options_templates`` of the reference's exchange-rate script, and the dollar-anchor count)
    and the time-discounting grid. Returns the files written (a part whose sources are absent is
    skipped)."""
    root = Path(root)
    out = root / "derived"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    templates = _extract_templates(root)
    if templates is not None:
        (out / "prompt_templates.json").write_text(json.dumps(templates, indent=1))
        written.append("derived/prompt_templates.json")
    src = root / _EXCHANGE_SRC
    if src.exists():
        space = extract_literals(
            src.read_text(), ["X_values", "N_values", "options_templates"], origin=str(src)
        )
        space["dollar_options"] = {
            "rule": "reference_dollar_amounts(100): np.logspace(0, 9, 100), rounded, deduped",
            "count": len(reference_dollar_amounts(100)),
        }
        space["note"] = f"extracted by utility_jax.io.datasets from {_EXCHANGE_SRC} (literals only)"
        (out / "exchange_rate_option_space.json").write_text(json.dumps(space, indent=1))
        written.append("derived/exchange_rate_option_space.json")
    (out / "time_discounting_grid.json").write_text(json.dumps(time_discounting_grid(), indent=1))
    written.append("derived/time_discounting_grid.json")
    return written
