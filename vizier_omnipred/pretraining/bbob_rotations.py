"""Vizier's BBOB rotations, drawn once per (dim, seed) instead of on every evaluation.

vizier.benchmarks' BBOB functions (google-vizier 0.1.24) evaluate one point per call and
draw their rotation matrices inside every call: a seeded `scipy.stats.special_ortho_group`
sample and its QR for each matrix, the same matrix each time for the same (dim, seed). In
pretraining batches, where every study evaluates its function at up to 116 points, those draws
were a fifth of building a batch (profiled once with cProfile on `trainer.make_batch`). `install()` puts a bounded
memo in front of the module's `_R`: the matrices are the same arrays as before (marked
read-only, so that no caller can change a cached one), computed once per study.
"""

from __future__ import annotations

import functools

from vizier._src.benchmarks.experimenters.synthetic import bbob

# A study's function asks for at most two matrices (R and Q) of one (dim, seed); a batch holds
# up to a few hundred studies, and each is evaluated in one go: room for a batch's worth.
CACHED_MATRICES = 1024


def install() -> None:
  """Memoizes `bbob._R` in this process (idempotent)."""
  if getattr(bbob._R, 'memoized', False):  # pylint: disable=protected-access
    return
  draw = bbob._R  # pylint: disable=protected-access

  @functools.lru_cache(maxsize=CACHED_MATRICES)
  def rotation(dim, seed, *more_seeds):
    matrix = draw(dim, seed, *more_seeds)
    matrix.setflags(write=False)
    return matrix

  rotation.memoized = True
  rotation.uncached = draw
  bbob._R = rotation  # pylint: disable=protected-access
