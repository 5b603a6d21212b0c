"""What every benchmark script does before torch or JAX loads: `prepare()`.

Scripts run from the repository root as modules (`python -m benchmarks.bbob`), so they import
the project and each other's library modules without editing `sys.path`.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

from vizier_omnipred import runtime

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root: subprocess jobs' cwd


def prepare() -> None:
  """OpenMP threads that sleep when idle (benchmarks share 2 cores) and float64 JAX for
  Vizier's GP designers (`vizier_omnipred.runtime`)."""
  runtime.configure_openmp()
  runtime.configure_jax_float64()


def run_in_own_process(module: str, *args: str) -> None:
  """`python -m module args...` from the repository root, quietly; raises if it fails. The
  benchmarks run each study of Vizier's GP designers this way: in one long process JAX's
  compile caches grow study by study until the machine is out of memory."""
  subprocess.run([sys.executable, '-m', module, *args], check=True, cwd=ROOT,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
