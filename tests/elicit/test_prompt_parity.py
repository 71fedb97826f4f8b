"""One checkpoint, one prompt: a base (non-chat) model reads the same text, token ids and answer
log-probs through the ``hf`` (torch) and ``jax`` (our NNX model) backends and in SFT examples,
system message included (it used to vanish on the jax/SFT path for base models)."""

import os

import numpy as np
import pytest

from utility_jax.elicit.jax_backend import JaxBackend
from utility_jax.finetune.testing import build_random_qwen2
from utility_jax.finetune.tokens import encode_prompts
from utility_jax.io.prompts import load_template, render_pair, render_text

pytest.importorskip("torch")

# float32 next-token probabilities of two implementations of the same tiny model
PROB_ATOL = 1e-4
PERSONA = "You are a US resident with this profile. Party identification: Democrat."
TEXTS = ["You receive a bicycle.", "You lose your keys.", "A new park opens near you."]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    tpl = load_template()
    corpus = [tpl.render(a, b) for a in TEXTS for b in TEXTS if a != b] + [PERSONA] * 5
    return build_random_qwen2(
        tmp_path_factory.mktemp("base"),
        corpus,
        hidden_size=64,
        intermediate_size=128,
        chat_template=None,
    )


def test_base_model_prompts_and_logprobs_agree_across_backends(base_model):
    from utility_jax.elicit.hf import HFBackend

    tpl = load_template()
    hb = HFBackend(str(base_model), batch_size=4)
    jb = JaxBackend.from_pretrained(base_model, batch_size=4)
    assert hb.chat is False and jb.chat is False
    msgs = [render_pair(tpl, TEXTS[i], TEXTS[j], PERSONA) for i, j in [(0, 1), (2, 0), (1, 2)]]
    for m in msgs:
        text = hb.render(m)
        assert text == render_text(jb.tokenizer, m, chat=False)
        assert text.startswith(PERSONA + "\n\n") and text.endswith("\n\nAnswer:")
    # the token ids the jax backend and SFT use are the hf backend's, row for row
    ids, mask = encode_prompts(jb.tokenizer, msgs, chat=False)
    enc = hb.tokenizer([hb.render(m) for m in msgs], add_special_tokens=False)["input_ids"]
    for row, m_row, want in zip(ids, mask, enc, strict=True):
        assert row[m_row.astype(bool)].tolist() == want
    for a, b in zip(jb.answer_probs(msgs), hb.answer_probs(msgs), strict=True):
        assert a.tokens_in == b.tokens_in
        np.testing.assert_allclose([a.p_a, a.p_b], [b.p_a, b.p_b], atol=PROB_ATOL)


def test_dropping_the_system_message_changes_the_prompt(base_model):
    """The parity above is not vacuous: the persona reaches the model's input."""
    jb = JaxBackend.from_pretrained(base_model, batch_size=4)
    tpl = load_template()
    with_p = encode_prompts(jb.tokenizer, [render_pair(tpl, *TEXTS[:2], PERSONA)], chat=False)
    without = encode_prompts(jb.tokenizer, [render_pair(tpl, *TEXTS[:2], None)], chat=False)
    assert with_p[1].sum() > without[1].sum()
