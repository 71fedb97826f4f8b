"""The Hydra configs, shipped inside the package as ``utility_jax.conf`` (``pkg://utility_jax.conf``)
so ``utility-jax`` works from any folder and from a wheel; ``conf/`` is their source in a checkout
(pyproject maps it)."""
