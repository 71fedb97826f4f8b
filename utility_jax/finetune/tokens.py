"""Chat prompts to padded token arrays (rendered by :func:`utility_jax.io.prompts.render_text`, the
renderer the ``hf`` backend uses too), and the answer-letter token ids."""

import numpy as np

from utility_jax.core.data import bucket_length
from utility_jax.io.prompts import answer_token_ids, encode_text, render_text

__all__ = ["answer_token_ids", "encode_prompts"]


def encode_prompts(
    tokenizer, prompts: list[list[dict]], *, chat: bool = True, min_bucket: int = 32
):
    """Left-padded ``(input_ids, attention_mask)`` int32 arrays, padded to a bucketed length.

    ``chat=False`` renders base-model prompts (system message kept, see ``render_text``).
    """
    enc = [encode_text(tokenizer, render_text(tokenizer, m, chat=chat), chat=chat) for m in prompts]
    t = bucket_length(max(len(e) for e in enc), min_bucket=min_bucket)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((len(enc), t), pad, dtype=np.int32)
    mask = np.zeros((len(enc), t), dtype=np.int32)
    for i, e in enumerate(enc):
        ids[i, t - len(e) :] = e
        mask[i, t - len(e) :] = 1
    return ids, mask
