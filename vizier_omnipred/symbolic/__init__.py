"""End-to-end symbolic regression (Kamienny et al. 2022): explain a study with a formula.

`generator` makes (formula, points) samples, `vocabulary` writes formulas as tokens,
`model` reads a point set and writes a formula, `trainer` trains it, `explain` samples
candidates, refines their constants with BFGS and reports the best, `cli` is
`vizier-omnipred explain`.
"""
