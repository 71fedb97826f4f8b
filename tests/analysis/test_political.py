"""The political analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import numpy as np
import pytest
from analysis_helpers import EXP, _run

from utility_jax.analysis import political as P


def test_political_inputs_reference_and_shipped():
    pol, ent = P.load_political(
        EXP / "political_values" / "options" / "policy_options.json",
        EXP / "political_values" / "options" / "entities.json",
    )
    assert sum(len(v) for v in pol.values()) == 136 and len(pol) == 18
    assert len(ent["politicians"]) == 31 and len(ent["platforms"]) == 7  # placeholder dropped
    own, own_ent = P.load_political()
    ref_texts = {t for v in pol.values() for t in v}
    assert not ref_texts & {t for v in own.values() for t in v}


@pytest.mark.slow
def test_political_places_the_model_next_to_its_planted_lean(tmp_path):
    """The model planted next to the Green Party: nearest in PCA space in >= 90% of draws."""
    n = _run(tmp_path, "political")
    assert n["nearest_to_model"][0]["entity"] == "the Green Party"
    assert n["nearest_share_of_draws"].get("the Green Party", 0) >= 0.9


def test_political_pca_places_a_planted_lean_next_to_the_right_entity():
    """Six entities on a planted left-right axis over 136 policies (plus a second, weaker axis);
    a model planted at entity "R2"'s position plus small noise is nearest to "R2"."""
    from utility_jax.analysis import political as P

    rng = np.random.default_rng(1)
    axis1, axis2 = rng.normal(size=136), rng.normal(size=136)
    pos = {
        "L1": (-2, 0.5),
        "L2": (-1, -0.5),
        "C": (0, 0),
        "R1": (1, 0.5),
        "R2": (2, -0.5),
        "R3": (3, 0.4),
    }
    names = list(pos) + ["model"]
    vecs = [p[0] * axis1 + p[1] * axis2 + 0.3 * rng.normal(size=136) for p in pos.values()]
    vecs.append(2 * axis1 - 0.5 * axis2 + 0.3 * rng.normal(size=136))
    out = P.pca(np.stack(vecs))
    assert out["explained"][0] > 0.5
    assert P.place_among(out["coords"], names, "model", k=1)[0][0] == "R2"
