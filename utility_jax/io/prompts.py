"""Forced-choice prompts: the paper's templates (exact), system messages, and the one renderer
from chat messages to the text a local model reads (chat template or base-model format).

This module sits below both shells: ``elicit`` (backends) and ``finetune`` (SFT examples) import
it, so one checkpoint sees the same prompt whichever path reads it.

Templates live in ``utility_jax/assets/prompt_templates.yaml``, reproduced exactly from the
reference (they are part of the method). A template has ``{option_A}`` and ``{option_B}`` (and
some ``{entity}``, ``{scenario}``...) fields; ``reasoning: true`` marks chain-of-thought variants
whose answers end in ``Answer: A`` / ``Answer: B``.
"""

import dataclasses
import functools

import yaml

from utility_jax.io.assets import asset_path

__all__ = [
    "PromptTemplate",
    "answer_token_ids",
    "load_template",
    "template_names",
    "system_message",
    "render_pair",
    "render_text",
    "encode_text",
]

_ASSET = asset_path("prompt_templates.yaml")


@functools.cache
def _assets() -> dict:
    return yaml.safe_load(_ASSET.read_text())


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """A forced-choice prompt with ``{option_A}`` and ``{option_B}`` slots (and any other fields
    its analysis fills); ``reasoning`` templates let the model think before its answer."""

    name: str
    text: str
    reasoning: bool = False

    def render(self, option_a: str, option_b: str, **fields) -> str:
        """The prompt for one presentation order; a ``ValueError`` names a missing field."""
        try:
            return self.text.format(option_A=option_a, option_B=option_b, **fields)
        except KeyError as e:
            raise ValueError(f"prompt template {self.name!r} needs field {e.args[0]!r}") from e


def template_names() -> list[str]:
    """The names of the shipped templates."""
    return list(_assets()["templates"])


def load_template(
    name: str = "default", *, text: str | None = None, reasoning: bool | None = None
) -> PromptTemplate:
    """A named paper template, or a custom one when ``text`` is given."""
    if text is not None:
        if "{option_A}" not in text or "{option_B}" not in text:
            raise ValueError(
                f"custom prompt template {name!r} must contain {{option_A}} and {{option_B}}"
            )
        return PromptTemplate(name, text, bool(reasoning))
    t = _assets()["templates"]
    if name not in t:
        raise ValueError(f"unknown prompt template {name!r}; known: {sorted(t)}")
    return PromptTemplate(
        name, t[name]["text"], t[name]["reasoning"] if reasoning is None else reasoning
    )


def system_message(name: str | None = "default") -> str | None:
    """A named system message (``default``: "You are a helpful assistant."), or None."""
    if name is None or name == "none":
        return None
    msgs = _assets()["system_messages"]
    return msgs.get(name, name)  # an unknown name is taken as the message itself


def base_model_prompt(user_content: str) -> str:
    """The reference's completion format for base (non-chat) models."""
    return _assets()["base_model_format"].format(user_content=user_content)


def render_text(tokenizer, messages: list[dict], *, chat: bool) -> str:
    """The exact text a local model reads for chat ``messages``: the one prompt renderer of the
    ``hf`` and ``jax`` backends and of SFT examples.

    ``chat``: the tokenizer's chat template with the generation prompt. Otherwise (a base model)
    the reference's completion format ``"{user}\\n\\nAnswer:"``, preceded by the system message
    and a blank line when there is one, so a system message (a citizen persona...) is never lost.
    Encode the text with ``add_special_tokens=not chat`` (:func:`encode_text`).
    """
    if chat:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    system = "".join(m["content"] + "\n\n" for m in messages if m["role"] == "system")
    user = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
    return system + base_model_prompt(user)


def encode_text(tokenizer, text: str, *, chat: bool) -> list[int]:
    """Token ids of a rendered prompt (a chat template brings its own special tokens)."""
    return tokenizer.encode(text, add_special_tokens=not chat)


def render_pair(
    template: PromptTemplate, option_a: str, option_b: str, system: str | None, **fields
) -> list[dict]:
    """Chat messages for one question: optional system message, then the user turn."""
    msgs = [] if system is None else [{"role": "system", "content": system}]
    msgs.append({"role": "user", "content": template.render(option_a, option_b, **fields)})
    return msgs


def answer_token_ids(tokenizer) -> dict[str, list[int]]:
    """Single-token spellings of "A" and "B" ("A", " A"), whose probabilities the hf and jax
    backends and the SFT loss sum."""
    out = {}
    for letter in ("A", "B"):
        ids = set()
        for s in (letter, " " + letter):
            enc = tokenizer.encode(s, add_special_tokens=False)
            if len(enc) == 1:
                ids.add(enc[0])
        if not ids:
            raise ValueError(f"the tokenizer has no single token for {letter!r}")
        out[letter] = sorted(ids)
    return out
