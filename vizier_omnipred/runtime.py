"""Process-wide settings that a program applies on purpose, before it loads torch.

Importing the library changes nothing in the process. A program that trains or runs
benchmarks beside other work (the `vizier-omnipred` commands, the benchmark scripts, the test
suite) calls `configure_openmp()` first thing: with two torch threads and the other core busy,
OpenMP threads that spin while idle collapse throughput (training 323 -> 92 examples per
second); sleeping when idle keeps it (179). docs/design.md, "OMP_WAIT_POLICY".
"""

from __future__ import annotations

import os
import sys

OPENMP_WAIT_POLICY = 'PASSIVE'


def configure_openmp() -> bool:
  """Sets OMP_WAIT_POLICY=PASSIVE unless the environment already chose one. OpenMP reads it
  when torch loads: once torch is imported this changes nothing and returns False (a command
  called in-process by a program that loaded torch keeps that program's setting)."""
  if 'torch' in sys.modules:
    return False
  os.environ.setdefault('OMP_WAIT_POLICY', OPENMP_WAIT_POLICY)
  return True


def configure_jax_float64() -> None:
  """Float64 JAX, for Vizier's GP designers (GP-UCB-PE, GP bandit) running in this process: in
  float32 GP-UCB-PE's third suggestion on shifted Sphere 2-D comes back with NaN parameters
  (the pinned jax 0.5.0 stack; the benchmarks call this). Before JAX loads this sets its environment flag (free); after, JAX's config."""
  if 'jax' not in sys.modules:
    os.environ.setdefault('JAX_ENABLE_X64', '1')
    return
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_x64', True)
