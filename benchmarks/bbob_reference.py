"""The reference values that normalise a shifted BBOB study's regret (0 = the optimum,
1 = a median random point)."""

from __future__ import annotations

import numpy as np


def reference(function: str, dim: int, seed: int) -> tuple[float, float]:
  """(f_opt estimate, f_median) of the shifted function.

  vizier's BBOB optimum is not exactly at 0 for every function (AttractiveSector,
  RosenbrockRotated), so f_opt is the best of f(0) and multi-start L-BFGS-B; `aggregate`
  also lowers it to anything a designer observed.
  """
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  from vizier._src.benchmarks.experimenters.synthetic import bbob  # pylint: disable=g-import-not-at-top
  fn = getattr(bbob, function)
  f = lambda z: float(np.real(fn(np.asarray(z))))
  rng = np.random.default_rng([seed, dim, 99])
  shift = np.random.default_rng([seed, dim]).uniform(-4, 4, dim)  # as in shifted_bbob
  x = rng.uniform(-5, 5, (2000, dim))
  starts = [np.zeros(dim)] + list(rng.uniform(-1, 1, (4, dim)))
  f_opt = min([f(np.zeros(dim))] + [optimize.minimize(f, z0, method='L-BFGS-B').fun
                                    for z0 in starts])
  f_med = float(np.median([f(xi - shift) for xi in x]))
  return float(f_opt), f_med
