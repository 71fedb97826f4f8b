"""Utility control on a tiny model: SFT toward planted target utilities, measured through the jax
backend before and after, on pairs never trained on."""

import os

import jax
import numpy as np
import pytest
from scipy import stats

pytest.importorskip("torch")

import utility_jax as uj  # noqa: E402
from utility_jax.elicit.jax_backend import JaxBackend  # noqa: E402
from utility_jax.elicit.llm import LLMAgent  # noqa: E402
from utility_jax.finetune.sft import SFTConfig, train_sft  # noqa: E402
from utility_jax.finetune.testing import build_random_qwen2  # noqa: E402
from utility_jax.finetune.tokens import answer_token_ids, encode_prompts  # noqa: E402
from utility_jax.io.outcomes import OutcomeSet  # noqa: E402
from utility_jax.io.prompts import load_template, render_pair  # noqa: E402

WORDS = [
    "apple",
    "river",
    "candle",
    "garden",
    "violin",
    "rocket",
    "castle",
    "forest",
    "island",
    "mirror",
    "pencil",
    "saddle",
    "tunnel",
    "wallet",
    "anchor",
    "beacon",
]
SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    outcomes = OutcomeSet.from_texts([f"You receive a {w}." for w in WORDS])
    tpl = load_template()
    corpus = [tpl.render(a, b) for a in outcomes.texts for b in outcomes.texts if a != b]
    path = build_random_qwen2(
        tmp_path_factory.mktemp("ctrl"), corpus, hidden_size=64, intermediate_size=128
    )
    return outcomes, tpl, path


def _examples(outcomes, tpl, pairs, target):
    prompts, t = [], []
    for i, j in pairs:
        prompts.append(render_pair(tpl, outcomes[i].text, outcomes[j].text, SYSTEM))
        t.append(target(i, j))
        prompts.append(render_pair(tpl, outcomes[j].text, outcomes[i].text, SYSTEM))
        t.append(target(j, i))
    return prompts, np.array(t)


def _heldout_accuracy(backend, outcomes, tpl, train_pairs, heldout_pairs, u):
    """Elicit the model on the training pairs (log-prob mode), refit utilities, and score their
    predictions on the held-out pairs against the target's order."""
    agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=SYSTEM)
    c = agent.query(train_pairs, 10, key=jax.random.key(0))
    data = uj.PairwiseData.from_counts(
        len(outcomes),
        train_pairs[:, 0],
        train_pairs[:, 1],
        c[:, 0, 0] + c[:, 1, 1],
        c[:, :, :2].sum((1, 2)),
    )
    fit = uj.fit_thurstonian(data)
    p = np.asarray(uj.predict_proba(fit, heldout_pairs[:, 0], heldout_pairs[:, 1]))
    return float(np.mean((p >= 0.5) == (u[heldout_pairs[:, 0]] > u[heldout_pairs[:, 1]])))


def test_sft_steers_refit_utilities_on_heldout_pairs(setup):
    """N=16 outcomes, planted target utilities u ~ N(0, 2^2), target P(i > j) = Phi((u_i - u_j)/0.5);
    90 training pairs (both orders), 30 held-out pairs never trained on; 250 AdamW steps, batch 32,
    seed 0. Held-out accuracy of the refit utilities: >= 0.9 after, <= 0.75 before."""
    outcomes, tpl, path = setup
    n = len(outcomes)
    rng = np.random.default_rng(0)
    u = 2.0 * rng.normal(size=n)
    pairs = np.stack(np.triu_indices(n, 1), 1)
    perm = rng.permutation(len(pairs))
    heldout, train = pairs[perm[:30]], pairs[perm[30:]]

    def target(i, j):
        return stats.norm.cdf((u[i] - u[j]) / 0.5)

    be = JaxBackend.from_pretrained(path, batch_size=32)
    before = _heldout_accuracy(be, outcomes, tpl, train, heldout, u)
    prompts, t = _examples(outcomes, tpl, train, target)
    ids, mask = encode_prompts(be.tokenizer, prompts)
    vp, vt = _examples(outcomes, tpl, heldout, target)
    vids, vmask = encode_prompts(be.tokenizer, vp)
    ans = answer_token_ids(be.tokenizer)
    log = train_sft(
        be.lm,
        ids,
        mask,
        t,
        ans["A"],
        ans["B"],
        SFTConfig(steps=250, lr=3e-3, eval_every=125),
        val=(vids, vmask, vt),
    )
    be.model = f"{path}#sft"  # a new model id: the tuned model's answers are its own
    after = _heldout_accuracy(be, outcomes, tpl, train, heldout, u)
    assert before <= 0.75, before
    assert after >= 0.9, (before, after)
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["val_agreement"] >= 0.9


def test_jax_backend_matches_hf_backend(setup):
    from utility_jax.elicit.hf import HFBackend

    outcomes, tpl, path = setup
    jb = JaxBackend.from_pretrained(path, batch_size=8)
    hb = HFBackend(str(path), batch_size=8)
    prompts = [
        render_pair(tpl, outcomes[i].text, outcomes[j].text, SYSTEM)
        for i, j in [(0, 1), (5, 2), (9, 15)]
    ]
    for a, b in zip(jb.answer_probs(prompts), hb.answer_probs(prompts), strict=True):
        assert a.p_a == pytest.approx(b.p_a, abs=1e-4) and a.p_b == pytest.approx(b.p_b, abs=1e-4)
    tp = jb.throughput()
    assert tp["prompts"] == 3 and tp["seconds"] > 0 and tp["prompts_per_s"] > 0


@pytest.mark.slow  # CI time: the fast tier keeps the main case
def test_sft_generalises_to_outcomes_never_trained_on(tmp_path):
    """25 compositional outcomes "You receive a {adjective} {noun}." with planted utility
    value(adjective) + value(noun); 5 of them (one per adjective and per noun) never appear in
    training. After 300 SFT steps (seed 0) on the pairs among the 20 others, the model's own answers
    on the 100 pairs that involve an unseen outcome agree with the target at >= 0.8, at least 0.25
    above the base model (chance is 0.5)."""
    import itertools

    adjs, nouns = (
        ["broken", "plain", "shiny", "golden", "tiny"],
        ["lamp", "bicycle", "watch", "piano", "boat"],
    )
    texts = [f"You receive a {a} {n}." for a in adjs for n in nouns]
    outcomes = OutcomeSet.from_texts(texts)
    rng = np.random.default_rng(0)
    va, vn = np.array([-2.0, -0.7, 0.5, 1.8, 0.0]), rng.normal(size=5)
    u = np.array([va[i] + vn[j] for i in range(5) for j in range(5)])
    unseen = [i * 5 + (2 * i) % 5 for i in range(5)]
    seen = [k for k in range(25) if k not in unseen]
    tpl = load_template()
    corpus = [tpl.render(a, b) for a in texts for b in texts if a != b]
    be = JaxBackend.from_pretrained(
        build_random_qwen2(tmp_path / "m", corpus, hidden_size=64, intermediate_size=128)
    )
    train = np.array(list(itertools.combinations(seen, 2)))
    test_pairs = np.array([(i, j) for i in unseen for j in seen])

    def agreement():
        agent = LLMAgent(be, outcomes, tpl, mode="logprob", system=SYSTEM)
        c = agent.query(test_pairs, 10, key=jax.random.key(0))
        p = (c[:, 0, 0] + c[:, 1, 1]) / c[:, :, :2].sum((1, 2))
        return float(np.mean((p >= 0.5) == (u[test_pairs[:, 0]] > u[test_pairs[:, 1]])))

    before = agreement()
    prompts, t = _examples(outcomes, tpl, train, lambda i, j: stats.norm.cdf((u[i] - u[j]) / 0.5))
    ids, mask = encode_prompts(be.tokenizer, prompts)
    ans = answer_token_ids(be.tokenizer)
    train_sft(be.lm, ids, mask, t, ans["A"], ans["B"], SFTConfig(steps=300, lr=3e-3))
    be.model += "#sft"
    after = agreement()
    assert after >= 0.8 and after - before >= 0.25, (before, after)


@pytest.mark.slow  # CI time: the fast tier keeps the main case
@pytest.mark.parametrize("variant", [dict(lora_rank=8, lr=5e-3, steps=400), dict(loss="token")])
def test_lora_and_token_level_sft_also_steer(setup, variant, tmp_path):
    """The same control problem as above (N=16, 30 held-out pairs, seed 0) with LoRA adapters of
    rank 8 only (400 steps), or with plain token-level SFT on sampled letters (300 steps): held-out
    accuracy >= 0.85; a
    LoRA-tuned model saves as a plain checkpoint that transformers loads with the same logits."""
    import jax.numpy as jnp
    import torch
    from transformers import AutoModelForCausalLM

    from utility_jax.finetune import save_checkpoint

    outcomes, tpl, path = setup
    rng = np.random.default_rng(0)
    u = 2.0 * rng.normal(size=len(outcomes))
    pairs = np.stack(np.triu_indices(len(outcomes), 1), 1)
    perm = rng.permutation(len(pairs))
    heldout, train = pairs[perm[:30]], pairs[perm[30:]]
    be = JaxBackend.from_pretrained(path, batch_size=32)
    prompts, t = _examples(outcomes, tpl, train, lambda i, j: stats.norm.cdf((u[i] - u[j]) / 0.5))
    ids, mask = encode_prompts(be.tokenizer, prompts)
    ans = answer_token_ids(be.tokenizer)
    cfg = SFTConfig(**{"steps": 300, "lr": 3e-3, **variant})
    train_sft(be.lm, ids, mask, t, ans["A"], ans["B"], cfg)
    be.model = f"{path}#{variant}"
    assert _heldout_accuracy(be, outcomes, tpl, train, heldout, u) >= 0.85
    if "lora_rank" in variant:
        ref = np.asarray(be.lm(jnp.asarray(ids[:2]), jnp.asarray(mask[:2])))
        out = save_checkpoint(be.lm, tmp_path / "lora_merged", source=path)
        back = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            want = back(torch.tensor(ids[:2]), attention_mask=torch.tensor(mask[:2])).logits.numpy()
        m = mask[:2].astype(bool)
        np.testing.assert_allclose(ref[m], want[m], atol=1e-3)
