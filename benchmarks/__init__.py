"""Benchmarks: thin scripts over a small library, run from the repository root as modules.

    python -m benchmarks.bbob --preset quick
    python -m benchmarks.tuning

Library: `designer_zoo` (the designers by name), `run_store` (raw runs and results paths),
`comparisons` (win rates, log-efficiency, plots), `bbob_reference`, `regression_studies`,
`server_study`, `study_grid`, `tuning_studies`, `tuning_tasks`, `process_setup`. Every other
module is a script with a `main()`; no script imports another.
"""
