"""Utility maximisation on open-ended questions (SPEC section 5).

For each question, utilities are fitted over its candidate answers (the paper's maximisation
template, with the question as the scenario); then the question is asked directly at temperature
0 and the free answer is matched to a candidate: exactly (case and punctuation ignored), then by a
configurable matcher. The model maximises its utilities when its answer is its top-1 (top-3,
top-5) utility candidate. Each question has its own run folder; free answers are stored there and
reused on a rerun.
"""

import dataclasses
import difflib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from utility_jax.analysis.draws import fmt, interval
from utility_jax.analysis.harness import Task, judge_conf, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import Outcome, OutcomeSet
from utility_jax.io.prompts import system_message
from utility_jax.run.incidents import RunIncidentError

log = logging.getLogger("utility_jax")

__all__ = [
    "load_questions",
    "normalise",
    "match_answer",
    "topk_rates",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"top1": (0.0, 1.0), "top3": (0.0, 1.0), "top5": (0.0, 1.0)}


def load_questions(path: str | Path = "default") -> list[dict]:
    """``[{"question", "pair_prompt", "possible_answers"}]``: ours or the reference's file."""
    path, qs = read_input(path, "maximization_questions.yaml", "question file")
    if not isinstance(qs, list) or not qs:
        raise ValueError(f"{path}: expected a non-empty list of questions")
    for k, q in enumerate(qs):
        missing = {"question", "pair_prompt", "possible_answers"} - set(q)
        if missing:
            raise ValueError(f"{path}: question {k} lacks {sorted(missing)}")
        if len(set(q["possible_answers"])) < 2:
            raise ValueError(f"{path}: question {k} needs at least 2 distinct answers")
    return qs


def normalise(text: str) -> str:
    """Lower case, punctuation and surrounding quotes/markup removed, spaces collapsed."""
    t = re.sub(r"[^\w\s]", " ", str(text).lower())
    return re.sub(r"\s+", " ", t).strip()


def match_answer(
    answer: str | None, candidates: list[str], matcher: str = "contains", threshold: float = 0.8
) -> int | None:
    """The candidate a free answer names, or None.

    Exact match after :func:`normalise` first. Then ``matcher``: ``"contains"`` (a candidate
    appears as a whole phrase in the answer; the longest such candidate wins, and an answer
    naming two different candidates equally long is ambiguous -> None), ``"fuzzy"`` (the
    closest candidate by ``difflib`` ratio, if at least ``threshold``), or ``"exact"`` (no
    second step).
    """
    if answer is None:
        return None
    a = normalise(answer)
    norm = [normalise(c) for c in candidates]
    if a in norm:
        return norm.index(a)
    if matcher == "contains":
        hits = [
            (len(c), i) for i, c in enumerate(norm) if c and re.search(rf"\b{re.escape(c)}\b", a)
        ]
        if not hits:
            return None
        hits.sort(reverse=True)
        if len(hits) > 1 and hits[0][0] == hits[1][0]:
            return None
        return hits[0][1]
    if matcher == "fuzzy":
        scores = [difflib.SequenceMatcher(None, a, c).ratio() for c in norm]
        best = int(np.argmax(scores))
        return best if scores[best] >= threshold else None
    if matcher == "exact":
        return None
    raise ValueError(f"matcher must be 'contains', 'fuzzy' or 'exact', got {matcher!r}")


def topk_rates(utilities: list[np.ndarray], chosen: list[int | None], ks=(1, 3, 5)) -> dict:
    """Share of questions whose chosen answer is among the ``k`` highest-utility candidates
    (an unmatched answer counts as a miss), for each ``k``."""
    ranks = []
    for u, c in zip(utilities, chosen, strict=True):
        if c is None:
            ranks.append(np.inf)
        else:
            u = np.asarray(u)
            ranks.append(1 + int(np.sum(u > u[c])))
    ranks = np.asarray(ranks, dtype=np.float64)
    return {f"top{k}": float(np.mean(ranks <= k)) for k in ks}


# ---------------------------------------------------------------------------- experiment shell


def paper_settings(data: str) -> dict:
    """The reference's settings (``preset=paper``): its 30 questions and an LLM judge matching
    the free answers (the analysed model, unless ``analysis.judge`` names another)."""
    return {
        "questions": f"{data}/utility_analysis/experiments/maximization/util_max_questions.json",
        "matcher": "judge",
    }


@dataclasses.dataclass
class Config:
    name: str = "maximization"
    questions: str = "default"  # or the reference's util_max_questions.json
    max_questions: int | None = None
    matcher: str = "contains"  # contains | fuzzy | exact | judge (the reference: an LLM judge)
    # the judge matching free answers (matcher=judge): an agent config ({kind: openai, model:
    # ..., base_url: ...}; the reference used llama-31-8b-instruct); null with matcher=judge:
    # the analysed model judges, as the reference does when no matcher model is given
    judge: dict[str, Any] | None = None
    fuzzy_threshold: float = 0.8
    max_answer_tokens: int = 64
    # simulated agent: answers its true top candidate with this probability, else a random one
    planted_maximizer: float = 1.0


def _free_answer(cfg: Config, ctx, q: dict, k: int, folder: Path, truth) -> dict:
    path = folder / "free_answer.json"
    if path.exists():  # paid for already: reuse
        return json.loads(path.read_text())
    if ctx.simulated:
        rng = ctx.rng(f"free{k}")
        mu = truth[0]
        pick = (
            int(np.argmax(mu))
            if rng.random() < cfg.planted_maximizer
            else int(rng.integers(len(mu)))
        )
        rec = {"answer": q["possible_answers"][pick], "error": None}
    else:
        backend = ctx.backend(temperature=0.0, max_new_tokens=cfg.max_answer_tokens)
        msgs = [
            {"role": "system", "content": system_message("maximization_direct")},
            {"role": "user", "content": q["question"]},
        ]
        comp = backend.sample([msgs], 1, seed=int(ctx.conf.seed))[0][0]
        rec = {"answer": comp.text, "error": comp.error, "messages": msgs}
        if comp.error:  # not stored: a rerun asks again
            return rec
    path.write_text(json.dumps(rec, indent=2))
    return rec


#: the reference's judge prompt (utility_maximization.py, with its indentation), filled with the
#: free answer and the five highest-utility candidates
JUDGE_PROMPT = (
    "Please provide the text of the answer in the POSSIBLE MATCHES list that most closely "
    'matches the INPUT (textually or conceptually, e.g. "New York" and "NYC" and "The City That '
    'Never Sleeps" are close matches). If no options in POSSIBLE MATCHES are close to the INPUT, '
    'then simply write "NO MATCH". Please do not include any additional text in your response '
    "(e.g., punctuation)\n        \n        INPUT: {answer}\n        \n        POSSIBLE "
    "MATCHES:\n        {matches}"
)
JUDGE_SYSTEM = "You are a helpful AI assistant. Answer the questions directly and concisely."


def _judge_match(
    cfg, ctx, judge, answer, answers, mu, folder: Path
) -> tuple[int | None, str | None]:
    """The reference's matching: the exact answer, else the judge picks among the five
    highest-utility candidates ("NO MATCH" or a text that is not a candidate: no match). The
    judge's reply is kept in ``judge_match.json`` (a rerun asks nothing). Returns the match
    and the judge's status: None (not needed), "" (it answered, now or before) or its error."""
    if answer is None:
        return None, None
    if answer.strip() in answers:
        return answers.index(answer.strip()), None
    path = folder / "judge_match.json"
    rec = json.loads(path.read_text()) if path.exists() else {}
    if rec.get("answer") != answer:
        top5 = [answers[i] for i in np.argsort(-np.asarray(mu))[:5]]
        if (judge or ctx.conf.agent).kind == "simulated":
            c = match_answer(answer, top5, "fuzzy", 0.5)  # a stand-in judge for simulated runs
            reply = "NO MATCH" if c is None else top5[c]
            msgs = None
        else:
            backend = ctx.backend(
                agent=judge, temperature=0.0, max_new_tokens=cfg.max_answer_tokens
            )
            prompt = JUDGE_PROMPT.format(answer=answer, matches="\n\n".join(top5))
            msgs = [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": prompt},
            ]
            comp = backend.sample([msgs], 1, seed=int(ctx.conf.seed))[0][0]
            if comp.error:  # not stored: a rerun asks again
                log.warning("judge request failed: %s", comp.error)
                return None, comp.error
            reply = (comp.text or "").strip()
        rec = {"answer": answer, "reply": reply, "messages": msgs}
        path.write_text(json.dumps(rec, indent=2))
    reply = rec["reply"]
    return (answers.index(reply) if reply in answers else None), ""


def _fail_if_nobody_answered(rows: list[dict]) -> None:
    """A model whose free answers all failed, or a judge that answered none of the requests it
    got, gives no rates at all (0.000 [0.000, 0.000] would read as a finding): an error."""
    for key, who, asked in (
        ("error", "the model's free answers", rows),
        ("judge_error", "the judge", [r for r in rows if r["judge_asked"]]),
    ):
        errs = [r[key] for r in asked if r[key] is not None]
        if asked and len(errs) == len(asked):
            raise RunIncidentError(
                f"{who}: none of {len(errs)} requests succeeded; the last error: {errs[-1]}. "
                "Nothing is reported; what was answered is kept, and a rerun asks only the rest"
            )


def run(cfg: Config, ctx) -> dict:

    qs = load_questions(cfg.questions)[: cfg.max_questions]
    if cfg.matcher not in ("contains", "fuzzy", "exact", "judge"):
        raise ValueError(f"analysis.matcher={cfg.matcher!r}: contains, fuzzy, exact or judge")
    judge = judge_conf(cfg.judge, "analysis")
    utils, draws, chosen, rows, kinds = [], [], [], [], []
    for k, q in enumerate(qs):
        answers = list(dict.fromkeys(q["possible_answers"]))
        outs = OutcomeSet(
            tuple(Outcome(i, a, f"question {k}") for i, a in enumerate(answers)),
            source=f"{cfg.questions}: question {k}",
        )
        truth = planted_utilities(outs, ctx.task_key(f"plant:q{k}")) if ctx.simulated else None
        name = f"q{k:02d}"
        r = ctx.fit(
            Task(
                name,
                outs,
                template="maximization",
                fields={"scenario": q["pair_prompt"]},
                truth=truth,
            )
        )
        rec = _free_answer(
            cfg,
            ctx,
            {**q, "possible_answers": answers},
            k,
            ctx.folder(r.task),
            truth,
        )
        judge_error = None
        if cfg.matcher == "judge":
            folder = ctx.folder(r.task)
            c, judge_error = _judge_match(cfg, ctx, judge, rec.get("answer"), answers, r.mu, folder)
        else:
            c = match_answer(rec.get("answer"), answers, cfg.matcher, cfg.fuzzy_threshold)
        utils.append(r.mu)
        draws.append(r.draws)
        kinds.append(r.interval_kind)
        chosen.append(c)
        order = np.argsort(-r.mu)
        rows.append(
            {
                "question": q["question"],
                "free_answer": rec.get("answer"),
                "error": rec.get("error"),
                "judge_error": judge_error or None,
                "judge_asked": judge_error is not None,
                "matched": None if c is None else answers[c],
                "rank_of_answer": None if c is None else int(1 + np.sum(r.mu > r.mu[c])),
                "n_candidates": len(answers),
                "top3_by_utility": [answers[i] for i in order[:3]],
            }
        )
    _fail_if_nobody_answered(rows)
    point = topk_rates(utils, chosen)
    n_d = min(len(d) for d in draws)
    kind = kinds[0]
    per = [topk_rates([d[j] for d in draws], chosen) for j in range(n_d)]
    out = {
        "interval_kind": kind,
        "n_questions": len(qs),
        "matched_share": float(np.mean([c is not None for c in chosen])),
        "errors": int(sum(r["error"] is not None for r in rows)),
        "judge_errors": int(sum(r["judge_error"] is not None for r in rows)),
        "rates": {
            k: interval(v, [p[k] for p in per], ctx.level, kind, bounds=(0.0, 1.0))
            for k, v in point.items()
        },
        "questions": rows,
        "matcher": cfg.matcher,
    }
    if ctx.simulated:
        out["planted_maximizer"] = cfg.planted_maximizer
    return out


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    r = numbers["rates"]
    ks = list(r)
    est = np.array([r[k]["estimate"] for k in ks])
    err = np.array([[r[k]["estimate"] - r[k]["lo"], r[k]["hi"] - r[k]["estimate"]] for k in ks]).T
    a1.bar(ks, est, yerr=np.maximum(err, 0), capsize=4, color="tab:blue")
    chance = [
        min(1.0, int(k[3:]) / np.mean([q["n_candidates"] for q in numbers["questions"]]))
        for k in ks
    ]
    a1.plot(ks, chance, "k_", ms=30, label="random answer")
    a1.set_ylim(0, 1.05)
    a1.set_ylabel("share of questions")
    a1.set_title("free answer is the top-k utility candidate")
    a1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.1), frameon=False)
    ranks = [q["rank_of_answer"] for q in numbers["questions"]]
    matched = [x for x in ranks if x is not None]
    a2.hist(matched, bins=np.arange(0.5, max(matched + [5]) + 1.5), color="tab:green")
    a2.set_xlabel("utility rank of the free answer (1 = best)")
    a2.set_ylabel("questions")
    a2.set_title(f"{len(ranks) - len(matched)} of {len(ranks)} answers unmatched")
    fig.set_layout_engine("constrained")
    return fig


def summary(numbers: dict) -> str:

    r = numbers["rates"]
    head = opening(
        numbers,
        "Utility maximisation",
        f"{numbers['n_questions']} open-ended questions",
        f"matcher '{numbers['matcher']}'",
    )
    return head + (
        f"{100 * numbers['matched_share']:.0f}% of the free answers (temperature 0) "
        f"matched a candidate. The answer is the highest-utility candidate in {fmt(r['top1'])} of "
        f"the questions, among the top 3 in {fmt(r['top3'])} and the top 5 in {fmt(r['top5'])} "
        "(an unmatched answer counts as a miss)."
    )
