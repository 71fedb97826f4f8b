"""Chat-formatted prompts to padded token arrays, and the answer-letter token ids."""

import numpy as np

from utility_jax.data import bucket_length
from utility_jax.elicit.prompts import answer_token_ids  # noqa: F401  (re-exported)

__all__ = ["answer_token_ids", "encode_prompts"]


def encode_prompts(
    tokenizer, prompts: list[list[dict]], *, chat: bool = True, min_bucket: int = 32
):
    """Left-padded ``(input_ids, attention_mask)`` int32 arrays, padded to a bucketed length."""
    from utility_jax.elicit.prompts import base_model_prompt

    texts = []
    for m in prompts:
        if chat:
            texts.append(
                tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
            )
        else:
            texts.append(
                base_model_prompt("\n\n".join(x["content"] for x in m if x["role"] != "system"))
            )
    enc = [tokenizer.encode(t, add_special_tokens=not chat) for t in texts]
    t = bucket_length(max(len(e) for e in enc), min_bucket=min_bucket)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((len(enc), t), pad, dtype=np.int32)
    mask = np.zeros((len(enc), t), dtype=np.int32)
    for i, e in enumerate(enc):
        ids[i, t - len(e) :] = e
        mask[i, t - len(e) :] = 1
    return ids, mask
