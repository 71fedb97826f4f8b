"""``python -m utility_jax ...`` is the ``utility-jax`` command."""

from utility_jax.cli import main

raise SystemExit(main())
