"""Named tolerances for the test suite (see STYLE.md rule 26)."""

EXACT = 1e-6  # exact identities (float64) / closed forms
JIT_F32 = 2e-5  # jit vs eager, float32
ORACLE_X64 = 1e-4  # optimiser vs oracle, float64
ORACLE_F32 = 1e-3  # optimiser vs oracle, float32
MC_REL = 0.07  # Monte Carlo / recovery, relative
