"""Helpers that build small local models for tests and benchmarks (no network, no downloads).

``build_random_qwen2`` trains a byte-level BPE tokenizer on a corpus with the ``tokenizers``
library, attaches a chat template, builds a randomly initialised Qwen2 causal LM of the requested
shape and saves both with ``save_pretrained``, so the real ``from_pretrained`` loading path is
what gets exercised. Needs torch and transformers (the ``hf`` extra).
"""

from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "build_random_qwen2"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_random_qwen2(
    path: str | Path,
    corpus: list[str],
    *,
    seed: int = 0,
    vocab_size: int = 400,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    answer_logit_scale: float | None = 16.0,
    chat_template: str | None = CHAT_TEMPLATE,
) -> Path:
    """Save a random Qwen2 checkpoint with a locally trained tokenizer to ``path``.

    Args:
      corpus: texts the tokenizer is trained on (include the prompts you will ask).
      chat_template: the tokenizer's chat template; ``None`` saves a base (non-chat) model.
      answer_logit_scale: if set, the output head keeps only the rows of the answer tokens
        ("A", " A", "B", " B"), random with this scale, and zeroes every other row, so the model
        answers A or B often enough to measure; ``None`` keeps the random head.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(
        list(corpus) + ["Option A or Option B? A B A B answer A answer B"] * 50, trainer
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
    )
    hf_tok.save_pretrained(path)
    cfg = Qwen2Config(
        vocab_size=len(hf_tok),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=hf_tok.pad_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    with torch.random.fork_rng():  # seeded without touching the caller's RNG state
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg)
        if answer_logit_scale is not None:
            with torch.no_grad():
                w = model.lm_head.weight
                keep = sorted(
                    {
                        ids[0]
                        for s in ("A", " A", "B", " B")
                        if len(ids := hf_tok.encode(s, add_special_tokens=False)) == 1
                    }
                )
                new = torch.zeros_like(w)
                new[keep] = (
                    answer_logit_scale * torch.randn(len(keep), w.shape[1]) / w.shape[1] ** 0.5
                )
                w.copy_(new)
    model.save_pretrained(path)
    return path
