"""Benchmark elicitation: the exact log-prob mode against the reference protocol, and the number of
queries the active-learning rules need.

    python benchmarks/bench_elicit.py [--pairs 40] [--hidden 256] [--layers 4] [--device cpu]
                                      [--seeds 5] [--outcomes N]

Part 1, on one local model (a random Qwen2 of the given shape with a locally trained tokenizer,
built here; no downloads): the reference protocol (2 orders x 10 samples at temperature 1, max 10
new tokens, batched generation) against the log-prob mode (2 forward passes per pair): forward
passes and wall time per pair, and the agreement of the two P(A) estimates (sampled with one new
token so every sample is a parseable letter).

Part 2, on the simulated agent (the shipped outcome set, planted utilities): training pairs needed
to bring the held-out log loss within 2% of the log loss of the true utilities, for random pairs,
the reference's rule and our variance-aware rule (rounds of 50 pairs, 5 seeds each).
"""

import argparse
import dataclasses
import tempfile
import time
import warnings

import jax
import numpy as np

warnings.simplefilter("ignore", FutureWarning)


def part1(args):
    from utility_jax.elicit.hf import HFBackend
    from utility_jax.elicit.llm import LLMAgent
    from utility_jax.finetune.testing import build_random_qwen2
    from utility_jax.io.outcomes import load_outcomes
    from utility_jax.io.prompts import load_template

    outcomes = load_outcomes()
    tpl = load_template()
    r = np.random.default_rng(0)
    corpus = [tpl.render(*r.choice(outcomes.texts, 2, replace=False)) for _ in range(300)]
    with tempfile.TemporaryDirectory() as d:
        build_random_qwen2(
            d,
            corpus,
            vocab_size=1000,
            hidden_size=args.hidden,
            intermediate_size=4 * args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=8,
            num_key_value_heads=2,
        )
        sample_be = HFBackend(d, device=args.device, batch_size=args.batch, max_new_tokens=10)
        pairs = np.stack([r.permutation(len(outcomes))[:2] for _ in range(args.pairs)])
        key = jax.random.key(0)
        n_params = sum(p.numel() for p in sample_be.lm.parameters())
        print(
            f"# model: random Qwen2, {n_params / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers), "
            f"device {args.device}; {args.pairs} pairs of the shipped outcomes"
        )

        ref = LLMAgent(sample_be, outcomes, tpl, mode="sample", batch_size=args.batch)
        ref.query(pairs[:2], 10, key=key)  # warm-up
        t0 = time.perf_counter()
        ref.query(pairs, 10, key=key)
        t_ref = (time.perf_counter() - t0) / args.pairs
        fwd_ref = 2 * 10 * sample_be.max_new_tokens  # one forward per generated token per sample
        lp = LLMAgent(sample_be, outcomes, tpl, mode="logprob", batch_size=args.batch)
        lp.query(pairs[:2], 10, key=key)
        t0 = time.perf_counter()
        c_lp = lp.query(pairs, 10, key=key)
        t_lp = (time.perf_counter() - t0) / args.pairs
        fwd_lp = 2
        # agreement: 20 one-token samples per pair (parseable letters) vs the exact P(A)
        one_tok = HFBackend(d, device=args.device, batch_size=args.batch, max_new_tokens=1)
        c_s = LLMAgent(one_tok, outcomes, tpl, mode="sample", batch_size=args.batch).query(
            pairs, args.k_agree, key=key
        )

    def p_first(c):  # P(first outcome preferred), both orders pooled, refusals left out
        wins = c[:, 0, 0] + c[:, 1, 1]
        tot = c[:, :, :2].sum((1, 2))
        return wins / np.maximum(tot, 1e-12), tot

    p_exact, _ = p_first(c_lp)
    p_samp, tot = p_first(c_s)
    ok = tot > 0
    se = np.sqrt(p_exact * (1 - p_exact) / np.maximum(tot, 1))
    print(f"\n{'protocol':<44}{'forward passes/pair':>20}{'wall s/pair':>13}")
    print(f"{'reference: 2 orders x 10 samples x 10 tokens':<44}{fwd_ref:>20}{t_ref:>13.4f}")
    print(f"{'ours: log-prob mode, 2 forward passes':<44}{fwd_lp:>20}{t_lp:>13.4f}")
    print(
        f"ratios: {fwd_ref / fwd_lp:.0f}x fewer forward passes (target >= 10x), "
        f"{t_ref / t_lp:.1f}x less wall time (target >= 5x)"
    )
    print(
        f"agreement of P(first preferred), {args.k_agree} one-token samples per order vs exact, {ok.sum()} pairs: "
        f"mean |diff| {np.mean(np.abs(p_samp - p_exact)[ok]):.3f}, "
        f"share within 2 binomial SE {np.mean((np.abs(p_samp - p_exact) <= 2 * se + 1e-9)[ok]):.2f}, "
        f"Pearson r {np.corrcoef(p_samp[ok], p_exact[ok])[0, 1]:.3f}"
    )


def part2(args):
    from utility_jax.core.simulate import planted_utilities
    from utility_jax.elicit import SimulatedAgent
    from utility_jax.io.outcomes import load_outcomes
    from utility_jax.run.config import ComputeUtilitiesConf, GraphConf, UncertaintyConf
    from utility_jax.run.pipeline import compute_utilities

    outcomes = load_outcomes(limit=args.outcomes)
    print(
        f"\n# simulated agent, {len(outcomes)} shipped outcomes, planted utilities; rounds of 50 pairs; "
        "target: held-out log loss within 2% of the true utilities'"
    )
    print(f"{'strategy':<12}{'pairs to target (per seed)':>32}{'mean':>8}")
    for strategy in ("random", "reference", "variance"):
        need = []
        for seed in range(args.seeds):
            mu, sigma = planted_utilities(outcomes, jax.random.key(100 + seed))
            agent = SimulatedAgent(mu, sigma)
            cfg = ComputeUtilitiesConf(
                graph=GraphConf(
                    strategy=strategy, edges_per_round=50, edge_multiplier=4.0, holdout_fraction=0.1
                ),
                uncertainty=UncertaintyConf(n_bootstrap=0, laplace=False),
                seed=seed,
                plots=False,
                progress=False,
            )
            cfg = dataclasses.replace(cfg)
            res = compute_utilities(
                outcomes, agent, cfg, key=jax.random.key(seed), true_utilities=(mu, sigma)
            )
            target = 1.02 * res.metrics["recovery"]["heldout_log_loss_true_utilities"]
            hit = [r["n_train_pairs"] for r in res.rounds if r["heldout_log_loss"] <= target]
            need.append(hit[0] if hit else np.inf)
        print(f"{strategy:<12}{str(need):>32}{np.mean(need):>8.0f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k-agree", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--outcomes", type=int, default=None, help="part 2 on the first N outcomes")
    args = ap.parse_args()
    if not args.skip_model:
        part1(args)
    part2(args)


if __name__ == "__main__":
    main()
