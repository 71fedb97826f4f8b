"""Build a tiny random Qwen2 checkpoint with a locally trained tokenizer and a chat template.

Everything is made here and saved with ``save_pretrained``, so the real ``from_pretrained``
loading code is what the tests exercise. No network, no downloads.
"""

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2(
    path: Path, corpus: list[str], *, seed: int = 0, answer_scale: float = 4.0
) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(
        corpus + ["Option A or Option B? A B A B answer A answer B"] * 50, trainer
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    hf_tok.save_pretrained(path)
    cfg = Qwen2Config(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        pad_token_id=hf_tok.pad_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg)
        # make the answer letters likely enough to be sampled: strong, input-dependent logits for
        # "A" / " A" / "B" / " B", zero logits for every other token
        with torch.no_grad():
            w = model.lm_head.weight
            keep = set()
            for s in ("A", " A", "B", " B"):
                ids = hf_tok.encode(s, add_special_tokens=False)
                if len(ids) == 1:
                    keep.add(ids[0])
            rows = torch.tensor(sorted(keep))
            new = torch.zeros_like(w)
            new[rows] = answer_scale * torch.randn(len(rows), w.shape[1]) / w.shape[1] ** 0.5 * 4
            w.copy_(new)
    model.save_pretrained(path)
    return Path(path)
