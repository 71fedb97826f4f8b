"""The paper's analyses (SPEC section 5): pure cores over utilities and choice data.

Each module computes its numbers from arrays (utilities, their draws, choice probabilities) with
no I/O; experiments and plots are built on top of them.
"""
