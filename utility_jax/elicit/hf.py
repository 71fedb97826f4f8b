"""A local transformers causal LM as an elicitation backend (torch; imported only when used).

Prompts are rendered by :func:`utility_jax.io.prompts.render_text` (the model's chat template when
it has one, else the base-model format), the same renderer the ``jax`` backend and SFT use. Batches
are left-padded, so the next-token distribution is read at the last position of every row.
"""

import time
from pathlib import Path
from typing import Any

from utility_jax.elicit.backend import AnswerDistribution, Completion, prompt_seeds
from utility_jax.io.prompts import answer_token_ids, render_text

__all__ = ["HFBackend", "from_config"]


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        chat: bool | None = None,
        temperature: float = 1.0,
        max_new_tokens: int = 10,
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.model = str(model)
        if Path(self.model).exists() is False and "/" not in self.model:
            raise FileNotFoundError(
                f"agent.model={self.model!r}: no such local checkpoint directory"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.model, trust_remote_code=trust_remote_code
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = {
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[dtype]
        self.lm = AutoModelForCausalLM.from_pretrained(
            self.model, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        self.lm.to(device).eval()
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.chat = self.tokenizer.chat_template is not None if chat is None else chat
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        try:
            self.answer_ids = answer_token_ids(self.tokenizer)
        except ValueError as e:
            raise ValueError(f"{self.model}: {e}") from None

    def settings(self, mode: str) -> dict[str, Any]:
        s = {"mode": mode, "chat": self.chat, "dtype": self.dtype}
        if mode == "sample":
            s.update(temperature=self.temperature, max_new_tokens=self.max_new_tokens)
        return s

    def render(self, messages: list[dict]) -> str:
        """The prompt text (see :func:`utility_jax.io.prompts.render_text`)."""
        return render_text(self.tokenizer, messages, chat=self.chat)

    def _encode(self, texts: list[str]):
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def answer_probs(self, prompts: list[list[dict]], on_result=None) -> list[AnswerDistribution]:
        torch = self.torch
        out: list[AnswerDistribution] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = [self.render(m) for m in prompts[start : start + self.batch_size]]
            t0 = time.perf_counter()
            try:
                enc = self._encode(batch)
                with torch.no_grad():
                    logits = self.lm(**enc).logits[:, -1, :].float()
                probs = torch.softmax(logits, dim=-1)
                pa = probs[:, self.answer_ids["A"]].sum(-1).tolist()
                pb = probs[:, self.answer_ids["B"]].sum(-1).tolist()
                n_in = enc["attention_mask"].sum(-1).tolist()
            except RuntimeError as e:  # e.g. out of memory: reported, never a vote
                res = [AnswerDistribution(0, 0, 0, error=f"{type(e).__name__}: {e}")] * len(batch)
            else:
                dt = (time.perf_counter() - t0) / len(batch)
                res = [
                    AnswerDistribution(a, b, max(0.0, 1.0 - a - b), int(t), dt)
                    for a, b, t in zip(pa, pb, n_in, strict=True)
                ]
            for r in res:
                if on_result is not None:
                    on_result(len(out), r)
                out.append(r)
        return out

    def sample(
        self, prompts: list[list[dict]], n: int, *, seed, on_result=None
    ) -> list[list[Completion]]:
        """Batched generation: one torch generator per batch of prompts, seeded with the batch's
        first prompt seed, so a local model's samples repeat for the same batches only."""
        torch = self.torch
        seeds = prompt_seeds(seed, len(prompts))
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = [self.render(m) for m in prompts[start : start + self.batch_size]]
            t0 = time.perf_counter()
            try:
                enc = self._encode(batch)
                # a seeded generator without touching the global torch RNG state
                with torch.random.fork_rng(devices=[] if self.device == "cpu" else None):
                    torch.manual_seed(seeds[start])
                    with torch.no_grad():
                        # temperature 0: greedy decoding (free answers in maximisation)
                        how = (
                            {
                                "do_sample": True,
                                "temperature": self.temperature,
                                "top_k": 0,
                                "top_p": 1.0,
                            }
                            if self.temperature > 0
                            else {"do_sample": False}
                        )
                        gen = self.lm.generate(
                            **enc,
                            **how,
                            max_new_tokens=self.max_new_tokens,
                            num_return_sequences=n,
                            pad_token_id=self.tokenizer.pad_token_id,
                        )
            except RuntimeError as e:
                rows = [[Completion(None, error=f"{type(e).__name__}: {e}")] * n for _ in batch]
            else:
                dt = (time.perf_counter() - t0) / (len(batch) * n)
                new = gen[:, enc["input_ids"].shape[1] :]
                texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
                n_in = enc["attention_mask"].sum(-1).tolist()
                rows = []
                for b in range(len(batch)):
                    row = []
                    for s in range(n):
                        toks = new[b * n + s]
                        n_out = int((toks != self.tokenizer.pad_token_id).sum())
                        t_in = int(n_in[b]) if s == 0 else 0  # the prompt once per request
                        row.append(Completion(texts[b * n + s], t_in, n_out, dt))
                    rows.append(row)
            for row in rows:
                if on_result is not None:
                    on_result(len(out), row)
                out.append(row)
        return out


def from_config(agent, elicitation) -> HFBackend:
    """The backend of an ``agent=hf`` config (``agent``: the agent settings, ``elicitation``: the
    sampling ones)."""
    return HFBackend(
        agent.model,
        device=agent.device,
        dtype=agent.dtype,
        batch_size=agent.batch_size,
        chat=agent.chat,
        temperature=elicitation.temperature,
        max_new_tokens=elicitation.max_new_tokens,
    )
