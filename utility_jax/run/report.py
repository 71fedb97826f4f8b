"""Writing a run folder: votes, utilities, metrics, a text summary and plots (I/O shell)."""

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from utility_jax.core.likelihood import predict_proba
from utility_jax.run.incidents import refusal_examples_text
from utility_jax.run.pipeline import ComputeUtilitiesResult
from utility_jax.run.uncertainty import preferred

__all__ = ["write_run", "utilities_table", "summary_text", "jsonable", "flatten"]


def jsonable(x: Any) -> Any:
    """``x`` with NumPy arrays and scalars as lists and numbers, non-finite floats as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict as one level, keys joined by dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def never_compared(res: ComputeUtilitiesResult) -> set[int]:
    """Outcomes no voted training pair compares: their fitted values are the prior's alone."""
    inc = (res.metrics.get("incidents") or {}).get("train") or {}
    return {int(i) for i in inc.get("outcomes_never_compared") or []}


def utilities_table(res: ComputeUtilitiesResult) -> list[dict[str, Any]]:
    """One row per outcome: id, text, category, whether any voted pair compares it, utilities
    (own and normalised scale), intervals. An outcome compared by no voted training pair gets
    NaN for every fitted number (never the prior's 0.0, which would rank it mid-table)."""
    f = res.fit
    cols = {
        "mu": np.asarray(f.mu),
        "sigma": np.asarray(f.sigma),
        "mu_normalized": np.asarray(f.mu_normalized),
        "sigma_normalized": np.asarray(f.sigma_normalized),
        **{k: np.asarray(v) for k, v in res.intervals.items()},
    }
    if res.true_mu is not None:
        cols["true_mu"] = res.true_mu
        cols["true_sigma"] = res.true_sigma
    never = never_compared(res)
    rows = []
    for i, o in enumerate(res.outcomes.outcomes):
        row = {"index": i, "id": o.id, "text": o.text, "category": o.category}
        row["compared"] = i not in never
        row.update(
            {
                k: float(v[i]) if i not in never or k.startswith("true_") else float("nan")
                for k, v in cols.items()
            }
        )
        rows.append(row)
    return rows


def _interval_kind(res: ComputeUtilitiesResult) -> str | None:
    """The interval shown in the summary and plots (:func:`utility_jax.run.uncertainty.preferred`)."""
    u = preferred(res.uncertainty)
    return None if u is None else u.kind


def summary_text(res: ComputeUtilitiesResult) -> str:
    m = res.metrics
    lines = [
        f"utility_jax compute_utilities: {m['n_outcomes']} outcomes, "
        f"{m['n_train_pairs']} training pairs, {m['n_heldout_pairs']} held-out pairs, "
        f"{m['votes_per_pair']} votes per pair",
        "",
    ]
    fit = m["fit"]
    lines.append(
        f"fit: {fit['model']} ({fit['solver']}), converged={fit['converged']}, "
        f"iterations={fit['n_iter']}, grad_norm={fit['grad_norm']:.2e}"
        + (f" ({fit['reason']})" if "reason" in fit else "")
    )
    lines += _coherence_lines(m)
    if "order" in m:
        lines.append(_order_line(m["order"]))
    if "pseudolabels" in m:
        lines += _pseudolabel_lines(m["pseudolabels"])
    lines += _cost_lines(m["cost"])
    lines += _incident_lines(m.get("incidents"))
    lines += [f"WARNING: {w}" for w in m.get("warnings", [])]
    if "mean_probability_outside_AB" in m["cost"]:
        lines.append(
            "mean next-token probability outside {A, B}: "
            f"{m['cost']['mean_probability_outside_AB']:.4f}"
        )
    if "bayes" in m:
        lines += _posterior_lines(m["bayes"])
    if "interval_agreement" in m:
        lines.append(
            "interval agreement (median width ratio): "
            + ", ".join(
                f"{k} {v['median_width_ratio']:.2f}" for k, v in m["interval_agreement"].items()
            )
        )
    if "recovery" in m:
        lines.append(
            "recovery of the known utilities: "
            + ", ".join(f"{k}={v:.4f}" for k, v in m["recovery"].items())
        )
    return "\n".join(lines + _utility_lines(res)) + "\n"


def _coherence_lines(m: dict) -> list[str]:
    """The table of coherence metrics beside the 50/50 random responder's."""
    rr = m["random_responder"]
    lines = [f"{'metric':<34}{'model':>10}{'random 50/50':>14}"]

    def row(name, a, b):
        lines.append(f"{name:<34}{a:>10.4f}{b:>14.4f}")

    if "heldout" in m:
        row("held-out accuracy", m["heldout"]["accuracy"], rr["heldout"]["accuracy"])
        row(
            "  (ties scored as half)",
            m["heldout"]["accuracy_ties_half"],
            rr["heldout"]["accuracy_ties_half"],
        )
        row("held-out log loss / vote", m["heldout"]["log_loss"], rr["heldout"]["log_loss"])
        row("held-out Brier", m["heldout"]["brier"], rr["heldout"]["brier"])
        row(
            "held-out calibration error",
            m["heldout"]["calibration_error"],
            rr["heldout"]["calibration_error"],
        )
    row(
        "train average confidence",
        m["train"]["average_confidence"],
        rr["average_confidence_closed_form"],
    )
    t, rt = m["training_graph_transitivity"], rr["training_graph_transitivity"]
    row("log10 P(cycle), training graph", t["log10_p_cycle"], rt["log10_p_cycle"])
    row("hard cycle rate, training graph", t["hard_cycle_rate"], rt["hard_cycle_rate"])
    lines.append(
        f"(cycles on {t['n_triads']} triangles of the asked graph, which active learning fills "
        "with near-indifferent pairs: NOT the paper's protocol; for that, fresh uniform triads: "
        f"utility-jax analyze experiment=transitivity; tie rule: {m['tie_rule']})"
    )
    return lines


def _cost_lines(c: dict) -> list[str]:
    """Answers, errors, calls and tokens, and the answer rule's disagreements."""
    lines = []
    lines.append(
        f"answers: {c['answers']} (refusal rate {c['refusal_rate']:.4f}), transport errors "
        f"{c['errors']} (rate {c['error_rate']:.4f}); model calls {c['model_calls']}, forward passes "
        f"{c['forward_passes']}, tokens {c['tokens']}, answers reused from the store {c.get('cache_hits', 0)}"
    )
    if "parser" in c:
        other = "strict" if c["parser"] == "reference" else "reference"
        lines.append(
            f"answer rule: {c['parser']}; {c['parser_disagreements']} answers "
            f"({c['parser_disagreements'] / max(c['answers'], 1):.2%}) would be read "
            f"differently by the {other} rule (elicitation.parser={other})"
        )
    return lines


#: what is known of SVI's interval coverage, by guide (docs/uncertainty.md, bench_coverage.py)
_SVI_COVERAGE = {
    "normal": "WARNING: SVI's mean-field (normal) guide under-covers: its 90% intervals covered "
    "0.798 and 0.788 of the planted utilities on the two simulated reference agents "
    "(docs/uncertainty.md); for intervals use bayes=nuts or the bootstrap",
    "other": "WARNING: the coverage of this SVI guide's intervals has not been measured "
    "(benchmarks/bench_coverage.py measures it); the mean-field guide under-covers",
}


def _posterior_lines(b: dict) -> list[str]:
    """The posterior's diagnostics and its posterior-predictive held-out scores."""
    lines = []
    if b["method"] == "nuts":
        lines.append(
            f"posterior (NUTS, {b['chains']} chains x {b['draws']} draws, {b['seconds']:.1f} s): "
            f"max R-hat {b['max_rhat']:.4f}, min bulk ESS {b['min_ess_bulk']:.0f}, "
            f"divergences {b['divergences']}"
        )
    else:
        lines.append(
            f"posterior (SVI, {b['guide']} guide, {b['steps']} steps, {b['seconds']:.1f} s)"
        )
        lines.append(_SVI_COVERAGE.get(b["guide"], _SVI_COVERAGE["other"]))
    if "heldout_log_loss_posterior_predictive" in b:
        lines.append(
            f"posterior-predictive held-out log loss {b['heldout_log_loss_posterior_predictive']:.4f}, "
            f"accuracy {b['heldout_accuracy_posterior_predictive']:.4f}"
        )
    for w in b.get("warnings", []):
        lines.append(f"WARNING: posterior diagnostics failed: {w}")
    return lines


def _utility_lines(res: ComputeUtilitiesResult) -> list[str]:
    """Every outcome by utility, with its bootstrap interval where there is one."""
    lines = [
        "",
        "outcomes by utility (normalised mean, sd"
        + (", 90% bootstrap interval" if "bootstrap_lo" in res.intervals else "")
        + "):",
    ]
    rows = sorted(utilities_table(res), key=lambda r: (not r["compared"], -r["mu_normalized"]))
    for r in rows:
        if not r["compared"]:
            lines.append(f"{'not compared':>14}  [{r['category']}] {r['text']}")
            continue
        ci = f" [{r['bootstrap_lo']:+.2f}, {r['bootstrap_hi']:+.2f}]" if "bootstrap_lo" in r else ""
        lines.append(
            f"{r['mu_normalized']:+7.3f} {r['sigma_normalized']:6.3f}{ci}  "
            f"[{r['category']}] {r['text']}"
        )
    return lines


def _order_line(o: dict) -> str:
    """The presentation-order line of the summary."""
    line = (
        f"presentation order: {o['share_choosing_first_shown']:.3f} "
        f"[{o['share_choosing_first_shown_lo']:.3f}, {o['share_choosing_first_shown_hi']:.3f}]"
        f" of decided answers chose the option shown first; the two orders agree on "
        f"{o['order_consistency']:.3f} of {o['n_pairs_both_orders']} pairs"
    )
    if "position_bias" in o:
        line += (
            f"; fitted first-slot shift {o['position_bias']:.3f} "
            f"[{o.get('position_bias_lo', float('nan')):.3f}, "
            f"{o.get('position_bias_hi', float('nan')):.3f}] (normalised "
            f"{o['position_bias_normalized']:.3f})"
        )
    if "heldout_log_loss_per_presentation" in o:
        line += f"; held-out log loss per presentation {o['heldout_log_loss_per_presentation']:.4f}"
    return line


def _pseudolabel_lines(pl: dict) -> list[str]:
    w, wo = pl["with"], pl["without"]

    def pair(key):
        return f"{wo.get(key, float('nan')):.4f} without, {w.get(key, float('nan')):.4f} with"

    return [
        f"pseudolabels (the reference's final fit): {pl['n_added']} of {pl['n_candidates']} "
        f"unasked pairs labelled (p >= {pl['threshold']}, weight {pl['weight']}); the utilities "
        "above are the fit with them",
        f"  held-out accuracy {pair('heldout_accuracy')}; held-out log loss "
        f"{pair('heldout_log_loss')}",
        f"  training accuracy (asked pairs) {pair('train_accuracy')}; with the pseudolabels "
        f"counted, as the reference reports it: {w['train_accuracy_with_pseudolabels']:.4f}",
    ]


def _incident_lines(inc: dict | None) -> list[str]:
    """The summary's INCIDENT lines (nothing when the run had none)."""
    if not inc:
        return []
    lines = []
    for part in ("train", "heldout"):
        p = inc.get(part) or {}
        if p.get("pairs_without_votes"):
            lines.append(
                f"INCIDENT: {p['pairs_without_votes']} of {p['n_pairs']} {part} pairs have no votes "
                f"and are left out ({p['without_votes_no_answer']} lost every request, "
                f"{p['without_votes_only_refusals']} only refusals); e.g. "
                f"{p['pairs_without_votes_examples'][:5]}"
            )
    never = (inc.get("train") or {}).get("outcomes_never_compared") or []
    if never:
        lines.append(
            f"INCIDENT: {len(never)} outcomes are compared by no voted training pair: they have "
            f"no utility (NaN in utilities.csv, 'not compared' below): {never[:20]}"
        )
    if inc.get("refusal_rate_exceeded"):
        ex = refusal_examples_text(inc)
        lines.append(
            f"INCIDENT: refusal rate {inc['refusal_rate']:.2%} passes agent.max_refusal_rate "
            f"{inc['max_refusal_rate']} (no A or B read in the reply)"
            + (f"; e.g. {ex}" if ex else "")
        )
    comp = (inc.get("train") or {}).get("components") or {}
    if comp.get("n", 1) > 1:
        lines.append(
            f"INCIDENT: the comparison graph has {comp['n']} components (sizes {comp['sizes']}): "
            "utilities compare only within a component; each component is centred on its own"
        )
    if inc.get("error_rate_exceeded"):
        lines.append(
            f"INCIDENT: transport-error rate {inc['error_rate']:.2%} passes agent.max_error_rate "
            f"{inc['max_error_rate']}; last error: {inc['last_error']}"
        )
    return lines


def _plots(res: ComputeUtilitiesResult, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")

    made = []
    rows = utilities_table(res)
    if len(rows) > DETAIL_MAX:
        _by_category_summary(res, rows, _interval_kind(res), out)
        made.append("utilities_by_category.png")
        rows = []  # the per-outcome figure below is for small sets only
    cats = sorted({r["category"] for r in rows})
    order = sorted(
        range(len(rows)), key=lambda i: (cats.index(rows[i]["category"]), rows[i]["mu_normalized"])
    )
    if rows:
        _by_outcome(res, rows, cats, order, out)
        made.append("utilities_by_category.png")
    _calibration_and_rounds(res, out, made)
    return made


#: above this many outcomes, utilities_by_category.png shows category summaries and the top and
#: bottom outcomes (every outcome is in utilities.csv)
DETAIL_MAX = 120
TOP_K = 15


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:2]) + ("..." if len(text) > 2 * width else "")


def _by_category_summary(res, rows, kind, out: Path) -> None:
    """Paper scale: each category's outcomes (points) with its median, categories sorted by
    median; beside it the top and bottom outcomes with their intervals."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["compared"]]  # the never-compared have no utility to show
    cats = sorted({r["category"] for r in rows})
    by = {c: np.array([r["mu_normalized"] for r in rows if r["category"] == c]) for c in cats}
    cats.sort(key=lambda c: np.median(by[c]))
    fig, (a1, a2) = plt.subplots(
        1, 2, figsize=(15, max(6, 0.28 * len(cats) + 1.5)), width_ratios=[1, 1.25]
    )
    for k, c in enumerate(cats):
        v = by[c]
        jitter = (np.random.default_rng(k).random(len(v)) - 0.5) * 0.5
        a1.scatter(v, k + jitter, s=6, alpha=0.5, color=f"C{k % 10}")
        a1.plot([np.median(v)] * 2, [k - 0.35, k + 0.35], color="k", lw=1.5)
    a1.set_yticks(range(len(cats)), [f"{c} ({len(by[c])})" for c in cats], fontsize=7)
    a1.set_xlabel("utility (mean 0, sd 1); bar: category median")
    a1.set_title(f"{len(rows)} outcomes in {len(cats)} categories", fontsize=10)
    order = np.argsort([r["mu_normalized"] for r in rows])
    pick = list(order[:TOP_K]) + list(order[-TOP_K:])
    y = np.arange(len(pick))
    mu = np.array([rows[i]["mu_normalized"] for i in pick])
    if kind:
        lo = np.array([rows[i][f"{kind}_lo"] for i in pick])
        hi = np.array([rows[i][f"{kind}_hi"] for i in pick])
        a2.errorbar(
            mu,
            y,
            xerr=[np.clip(mu - lo, 0, None), np.clip(hi - mu, 0, None)],
            fmt="o",
            ms=3,
            capsize=2,
            elinewidth=0.8,
            label=f"90% {kind} interval",
        )
    else:
        a2.plot(mu, y, "o", ms=3)
    if res.true_mu is not None:
        tz = (res.true_mu - res.true_mu.mean()) / res.true_mu.std()
        a2.scatter(tz[pick], y, marker="x", color="k", s=14, zorder=4, label="true (simulated)")
    a2.axhline(TOP_K - 0.5, color="0.6", lw=0.8, ls="--")
    a2.set_yticks(y, [_wrap(rows[i]["text"]) for i in pick], fontsize=6)
    a2.set_title(f"bottom {TOP_K} and top {TOP_K} outcomes (all in utilities.csv)", fontsize=10)
    a2.set_xlabel("utility (mean 0, sd 1)")
    if kind or res.true_mu is not None:
        a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.06), ncols=2, frameon=False)
    fig.set_layout_engine("constrained")
    fig.savefig(out / "utilities_by_category.png", dpi=120)
    plt.close(fig)


def _by_outcome(res, rows, cats, order, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, max(4, 0.16 * len(rows))))
    y = np.arange(len(order))
    mu = np.array([rows[i]["mu_normalized"] for i in order])
    col = [cats.index(rows[i]["category"]) for i in order]
    kind = _interval_kind(res)
    if kind:
        lo = np.array([rows[i][f"{kind}_lo"] for i in order])
        hi = np.array([rows[i][f"{kind}_hi"] for i in order])
        level = res.metrics.get("bayes", {}).get("hdi_prob", 0.9) if kind == "posterior" else 0.9
        label = {
            "posterior": "posterior HDI",
            "bootstrap": "bootstrap interval",
            "laplace": "Laplace interval",
        }[kind]
        ax.hlines(y, lo, hi, color="0.6", lw=1.5, label=f"{level:.0%} {label}")
    ax.scatter(mu, y, c=col, cmap="tab20", s=14, zorder=3, label="utility (normalised)")
    if res.true_mu is not None:
        tz = (res.true_mu - res.true_mu.mean()) / res.true_mu.std()
        ax.scatter(tz[order], y, marker="x", color="k", s=12, zorder=4, label="true (simulated)")
    ax.set_yticks(
        y,
        [rows[i]["text"][:55] + ("" if rows[i]["compared"] else " [not compared]") for i in order],
        fontsize=5,
    )
    # category bands: a rule between categories and the category's name at the right edge
    cat_of = [rows[i]["category"] for i in order]
    starts = [k for k in range(len(cat_of)) if k == 0 or cat_of[k] != cat_of[k - 1]]
    x_right = ax.get_xlim()[1]
    for k, st in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(cat_of)
        if st > 0:
            ax.axhline(st - 0.5, color="0.85", lw=0.6, zorder=0)
        ax.text(
            x_right,
            (st + end - 1) / 2,
            cat_of[st],
            fontsize=5,
            ha="right",
            va="center",
            color="0.3",
        )
    ax.set_xlabel("utility (mean 0, sd 1)")
    ax.set_title("Utilities by category")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.03), ncols=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "utilities_by_category.png", dpi=130)
    plt.close(fig)


def _calibration_and_rounds(res, out: Path, made: list) -> None:
    import matplotlib.pyplot as plt

    if res.heldout is not None:
        v = res.heldout.valid()
        p = np.asarray(predict_proba(res.fit, v["idx_a"], v["idx_b"]))
        pe = v["n_a"] / v["n_total"]
        bins = np.linspace(0, 1, 11)
        b = np.clip(np.digitize(p, bins) - 1, 0, 9)
        xs = [p[b == k].mean() for k in range(10) if (b == k).any()]
        ys = [pe[b == k].mean() for k in range(10) if (b == k).any()]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], "--", color="0.5", lw=1)
        ax.scatter(p, pe, s=6, alpha=0.3, label="held-out pairs")
        ax.plot(xs, ys, "o-", color="C3", label="binned")
        ax.set_xlabel("predicted P(A > B)")
        ax.set_ylabel("empirical P(A > B)")
        ax.set_title("Calibration on held-out pairs")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "calibration.png", dpi=130)
        plt.close(fig)
        made.append("calibration.png")

        rr = [r for r in res.rounds if "heldout_log_loss" in r]
        if rr:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.plot([r["n_train_pairs"] for r in rr], [r["heldout_log_loss"] for r in rr], "o-")
            rand = res.metrics["random_responder"]["heldout"]["log_loss"]
            ax.axhline(rand, color="0.5", ls="--", label=f"random responder ({rand:.3f})")
            tl = res.metrics.get("recovery", {}).get("heldout_log_loss_true_utilities")
            if tl is not None:
                ax.axhline(tl, color="C2", ls=":", label=f"true utilities ({tl:.3f})")
            ax.set_xlabel("training pairs")
            ax.set_ylabel("held-out log loss per vote")
            ax.set_title("Held-out log loss by round")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(out / "heldout_by_round.png", dpi=130)
            plt.close(fig)
            made.append("heldout_by_round.png")


def _write_posterior(res: ComputeUtilitiesResult, out: Path) -> dict[str, str]:
    """Posterior draws, a per-outcome summary (mean, sd, HDI of mu and sigma, own and normalised
    scale) and, for NUTS, ArviZ's per-parameter diagnostics (R-hat, ESS)."""
    from utility_jax.core.bayes import summarize_posterior

    post = res.posterior
    written = {}
    post.save(out / "posterior_draws.npz")
    written["posterior_draws.npz"] = str(out / "posterior_draws.npz")
    level = res.metrics.get("bayes", {}).get("hdi_prob", 0.9)
    summ = summarize_posterior(post, level)
    with open(out / "posterior_summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "text", *summ])
        for i, o in enumerate(res.outcomes.outcomes):
            w.writerow([i, o.text, *[f"{float(v[i]):.6g}" for v in summ.values()]])
    written["posterior_summary.csv"] = str(out / "posterior_summary.csv")
    written.update(_write_inference_data(res, out))
    if post.inference_data is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import arviz as az

            table = az.summary(post.inference_data, kind="diagnostics")
        table.to_csv(out / "posterior_diagnostics.csv")
        written["posterior_diagnostics.csv"] = str(out / "posterior_diagnostics.csv")
    return written


def _write_inference_data(res: ComputeUtilitiesResult, out: Path) -> dict[str, str]:
    """The posterior as ArviZ InferenceData (``posterior.nc``, netCDF4 through h5netcdf): ``mu``
    and ``log_sigma`` with dims ``(chain, draw, outcome)``, NUTS sample stats when there are any,
    and the outcome texts as constant data. ``arviz.from_netcdf`` reads it back."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    post = res.posterior
    ch = max(int(post.chains), 1)
    n = post.mu.shape[1]

    def shaped(x):
        return np.asarray(x).reshape(ch, -1, n)

    stats = {}
    src = post.inference_data
    if src is not None and hasattr(src, "sample_stats") and "diverging" in src.sample_stats:
        stats["diverging"] = np.asarray(src.sample_stats["diverging"])
    idata = az.from_dict(
        posterior={"mu": shaped(post.mu), "log_sigma": shaped(post.log_sigma)},
        sample_stats=stats or None,
        constant_data={"outcome_text": np.array(res.outcomes.texts, dtype=object)},
        coords={"outcome": np.arange(n)},
        dims={"mu": ["outcome"], "log_sigma": ["outcome"], "outcome_text": ["outcome"]},
        attrs={"method": post.method, "link": post.link, "inference_library": "utility_jax"},
    )
    idata.to_netcdf(str(out / "posterior.nc"), engine="h5netcdf")
    return {"posterior.nc": str(out / "posterior.nc")}


def write_run(
    res: ComputeUtilitiesResult,
    out_dir: str | Path,
    *,
    config: dict | None = None,
    plots: bool = True,
) -> dict[str, str]:
    """Write the run folder; returns the name -> path of every file written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}

    def put(name, text):
        (out / name).write_text(text)
        written[name] = str(out / name)

    if config is not None:
        import yaml

        put("config_resolved.yaml", yaml.safe_dump(jsonable(config), sort_keys=False))
    put("outcomes.json", json.dumps(res.outcomes.to_records(), indent=1))
    # per-pair votes, both orders kept apart
    with open(out / "votes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "split",
                "round",
                "idx_a",
                "idx_b",
                "a_first_A",
                "a_first_B",
                "a_first_refusal",
                "b_first_A",
                "b_first_B",
                "b_first_refusal",
            ]
        )
        for split, pairs, counts, rounds in (
            ("train", res.train_pairs, res.train_counts, res.train_round),
            ("heldout", res.heldout_pairs, res.heldout_counts, np.full(len(res.heldout_pairs), -1)),
        ):
            for (a, b), c, r in zip(pairs.tolist(), counts, rounds.tolist(), strict=True):
                w.writerow([split, r, a, b, *[f"{x:g}" for x in c.reshape(-1)]])
    written["votes.csv"] = str(out / "votes.csv")
    rows = utilities_table(res)
    put("utilities.json", json.dumps(jsonable(rows), indent=1))
    with open(out / "utilities.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    written["utilities.csv"] = str(out / "utilities.csv")
    put("metrics.json", json.dumps(jsonable(res.metrics), indent=1))
    put("summary.txt", summary_text(res))
    if res.posterior is not None:
        written.update(_write_posterior(res, out))
    if plots:
        for name in _plots(res, out):
            written[name] = str(out / name)
    return written
