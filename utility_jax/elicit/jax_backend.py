"""Our Flax NNX model as an elicitation backend (log-prob mode), so a model is measured before
and after tuning without format conversions.

Prompts are rendered and encoded by :func:`utility_jax.finetune.tokens.encode_prompts`, i.e. by
:func:`utility_jax.io.prompts.render_text`, the renderer the ``hf`` backend uses: the same checkpoint
reads the same text through both backends (a test checks prompts and log-probs agree).
"""

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from utility_jax.elicit.backend import AnswerDistribution
from utility_jax.finetune import load_checkpoint
from utility_jax.finetune.model import last_logits_jit
from utility_jax.finetune.sharding import batch_sharding, data_parallel_size, to_host
from utility_jax.finetune.tokens import encode_prompts
from utility_jax.io.prompts import answer_token_ids

__all__ = ["JaxBackend", "from_config"]


class JaxBackend:
    name = "jax"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        model_id: str,
        batch_size: int = 32,
        chat: bool | None = None,
        mesh=None,
    ):
        """``model``: a :class:`~utility_jax.finetune.CausalLM`; ``model_id`` names it in the store
        (use a new id for every tuned version, so answers of different weights never mix);
        ``mesh``: split each batch over its data-parallel axes."""
        self.lm, self.tokenizer, self.model = model, tokenizer, model_id
        self.batch_size = batch_size
        self.mesh = mesh
        self.prompts_done, self.seconds = 0, 0.0  # throughput (``throughput()``)
        self.chat = tokenizer.chat_template is not None if chat is None else chat
        ids = answer_token_ids(tokenizer)
        self.a_ids, self.b_ids = jnp.asarray(ids["A"]), jnp.asarray(ids["B"])

    @classmethod
    def from_pretrained(cls, path, **kw) -> "JaxBackend":
        from transformers import AutoTokenizer  # imported on use: transformers is slow to load

        return cls(
            load_checkpoint(path), AutoTokenizer.from_pretrained(path), model_id=str(path), **kw
        )

    def _place(self, x: np.ndarray):
        """A batch as a device array: split over the mesh's data-parallel axes where there is a
        mesh and they divide the batch, else on the default device."""
        if self.mesh is not None and len(x) % data_parallel_size(self.mesh) == 0:
            return jax.device_put(x, batch_sharding(self.mesh, x.ndim))
        return jnp.asarray(x)

    def throughput(self) -> dict[str, float]:
        """Prompts scored so far, the seconds they took (tokenising included; the first batch
        of each length includes its compilation), and prompts per second."""
        rate = self.prompts_done / self.seconds if self.seconds > 0 else float("nan")
        return {"prompts": self.prompts_done, "seconds": self.seconds, "prompts_per_s": rate}

    def settings(self, mode: str) -> dict[str, Any]:
        if mode != "logprob":
            raise ValueError(
                "the jax backend implements the log-prob mode only (elicitation=logprob)"
            )
        return {"mode": mode, "chat": self.chat}

    def sample(self, prompts, n, *, seed, on_result=None):
        raise NotImplementedError(
            "the jax backend implements the log-prob mode only (elicitation=logprob)"
        )

    def answer_probs(self, prompts: list[list[dict]], on_result=None) -> list[AnswerDistribution]:
        out: list[AnswerDistribution] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            t0 = time.perf_counter()
            ids, mask = encode_prompts(self.tokenizer, chunk, chat=self.chat)
            rows = len(chunk)
            if rows < self.batch_size:  # one compiled shape for every chunk
                ids = np.concatenate([ids, np.repeat(ids[-1:], self.batch_size - rows, 0)])
                mask = np.concatenate([mask, np.repeat(mask[-1:], self.batch_size - rows, 0)])
            logits = last_logits_jit(self.lm, self._place(ids), self._place(mask))
            p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
            pa = to_host(p[:, self.a_ids].sum(-1))[:rows]
            pb = to_host(p[:, self.b_ids].sum(-1))[:rows]
            elapsed = time.perf_counter() - t0
            self.prompts_done += rows
            self.seconds += elapsed
            dt = elapsed / rows
            for i in range(rows):
                d = AnswerDistribution(
                    float(pa[i]),
                    float(pb[i]),
                    max(0.0, 1 - float(pa[i] + pb[i])),
                    int(mask[i].sum()),
                    dt,
                )
                if on_result is not None:
                    on_result(len(out), d)
                out.append(d)
        return out


def from_config(agent, elicitation) -> JaxBackend:
    """The backend of an ``agent=jax`` config (our NNX model, log-prob mode)."""
    return JaxBackend.from_pretrained(agent.model, batch_size=agent.batch_size, chat=agent.chat)
