"""LLM backends by agent kind: the one table of them.

A backend module defines ``from_config(agent, elicitation)``, which builds its backend (see
:class:`~utility_jax.elicit.backend.Backend`) from the agent settings and the sampling ones. The
built-in kinds are listed in :data:`BACKENDS` and imported only when asked for (``hf`` needs torch,
``jax`` flax and transformers). A backend of one's own needs no edit here: its agent config names
its module (``agent.backend: my_package.my_backend``) and carries its settings in
``agent.options``.
"""

import importlib
from types import ModuleType

__all__ = ["AGENT_KINDS", "BACKENDS", "backend_module"]

#: agent.kind -> the module that builds its backend
BACKENDS = {
    "hf": "utility_jax.elicit.hf",
    "jax": "utility_jax.elicit.jax_backend",
    "openai": "utility_jax.elicit.openai_compat",
}
#: every agent kind a config may name without ``agent.backend``
AGENT_KINDS = ("simulated", *BACKENDS)


def backend_module(kind: str, backend: str | None = None) -> ModuleType:
    """The module that builds the backend of an agent kind (``backend`` overrides the table)."""
    where = backend or BACKENDS.get(kind)
    if where is None:
        raise ValueError(
            f"agent.kind={kind!r} has no LLM backend: one of {', '.join(BACKENDS)}, or name a "
            "module of your own with agent.backend"
        )
    try:
        mod = importlib.import_module(where)
    except ImportError as e:
        if backend is None:
            raise  # a built-in backend's own dependency is missing: its message says which
        raise ValueError(f"agent.backend={where!r} does not import: {e}") from e
    if not callable(getattr(mod, "from_config", None)):
        raise ValueError(f"agent.backend={where!r} has no from_config(agent, elicitation)")
    return mod
