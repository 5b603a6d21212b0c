"""What every benchmark script does before torch or JAX loads: `prepare()`.

Scripts run from the repository root as modules (`python -m benchmarks.bbob`), so they import
the project and each other's library modules without editing `sys.path`.
"""

from __future__ import annotations

import pathlib

from vizier_omnipred import runtime

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root: subprocess jobs' cwd


def prepare() -> None:
  """OpenMP threads that sleep when idle (benchmarks share 2 cores) and float64 JAX for
  Vizier's GP designers (`vizier_omnipred.runtime`)."""
  runtime.configure_openmp()
  runtime.configure_jax_float64()
