"""Vizier's yardstick for comparing optimisers: log-efficiency of one designer's convergence
curves against a baseline's (`LogEfficiencyConvergenceCurveComparator` of Vizier's benchmark
analyzers). A score s > 0 means the compared designer needs about exp(-s) times the baseline's
trials to reach the same best value (median curves over seeds); s < 0, more; scores are
clipped to [-1, 1] by Vizier."""

from __future__ import annotations

import numpy as np


def log_efficiency(compared: np.ndarray, baseline: np.ndarray) -> float:
  """compared, baseline: [seeds, trials] best-so-far values to MINIMISE (e.g. regret)."""
  from vizier._src.benchmarks.analyzers import convergence_curve as cc  # pylint: disable=g-import-not-at-top
  compared, baseline = np.atleast_2d(compared), np.atleast_2d(baseline)
  xs = np.arange(1, compared.shape[1] + 1)
  curve = lambda ys: cc.ConvergenceCurve(xs=xs, ys=np.asarray(ys, dtype=float),
                                         trend=cc.ConvergenceCurve.YTrend.DECREASING)
  return float(cc.LogEfficiencyConvergenceCurveComparator(
      baseline_curve=curve(baseline), compared_curve=curve(compared)).score())
