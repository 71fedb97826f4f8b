"""A small stand-in for the reference's exchange-rate script, written for the fetch tests: the
extractor reads its top-level literals and must never run it."""

import sys

X_values = {"pets": ["cats", "dogs"]}
N_values = {"count": [1, 10, 100]}
options_templates = {"pets": {"count": "{N} {X} are adopted."}}

sys.exit("the extractor must not execute this file")
