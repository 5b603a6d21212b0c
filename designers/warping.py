"""y as the designer feeds it to a surrogate: oriented, warped, and back.

Trial values are *oriented* first (larger is better: a MINIMIZE metric is negated) so that the
designer's bookkeeping and the acquisition have one direction. The surrogate reads them
*warped* and in the study's own direction again, since its input says MAXIMIZE or MINIMIZE
and pretraining saw y as studies report it.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.stats import norm, rankdata

WARPS = ('rank', 'midrank', 'log', 'halfrank', 'none')
# 'log': the gap to the best value is floored at this share of the values' range.
LOG_FLOOR = 1e-3
# 'halfrank': a worse-half value sits at least this many spreads below the median (a normal
# score near 0 would otherwise put it level with the median's own value).
_HALF_RANK_GAP = 1e-3


@attrs.frozen
class YWarp:
  """`kind='rank'`: y -> its rank in [0, 1]. BBOB objectives span orders of magnitude; an
  affine map would squeeze the region near the optimum into one digit. `'midrank'`: the same,
  with tied values sharing their mean rank (a plateau of equal scores reads as equal, not as
  an arbitrary staircase in the order the trials came). `'log'`: -log of the gap to the best
  value (floored at LOG_FLOOR of the range): a bowl keeps its shape near its bottom, where
  ranks crowd (in 8-D, the share of points within r of a sphere's centre grows as r^8).
  `'halfrank'` (Vizier's GP output warping's first step): the better half keeps its values, the
  worse half is replaced by normal scores at its ranks, scaled by the better half's spread
  about the median: near the best the shape is kept, and a far outlier cannot squeeze it."""

  maximize: bool
  kind: str = attrs.field(default='rank', validator=attrs.validators.in_(WARPS))

  def orient(self, value: float) -> float:
    return float(value) if self.maximize else -float(value)

  def warp(self, oriented: np.ndarray) -> np.ndarray:
    """Oriented values [n] -> warped, oriented values [n] (order preserved)."""
    y = np.asarray(oriented, dtype=np.float64)
    if self.kind == 'rank':
      return np.argsort(np.argsort(y, kind='stable'), kind='stable') / max(1, len(y) - 1)
    if self.kind == 'midrank':
      return (rankdata(y, method='average') - 1.0) / max(1, len(y) - 1)
    if self.kind == 'log':
      best, floor = _log_anchor(y)
      return -np.log(best - y + floor)
    if self.kind == 'halfrank':
      return _half_rank(y)
    return y

  def unwarp(self, warped: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Warped, oriented values -> oriented values in the metric's units, given the oriented
    values `observed` [k] that were warped: a rank maps to the observed value at that rank
    (linear between neighbours; ranks beyond [0, 1] to the worst or best observed)."""
    warped = np.asarray(warped, dtype=np.float64)
    if self.kind == 'none':
      return warped
    if self.kind == 'log':
      best, floor = _log_anchor(np.asarray(observed, dtype=np.float64))
      return best + floor - np.exp(-warped)
    ordered = np.sort(np.asarray(observed, dtype=np.float64))
    if len(ordered) == 1:
      return np.full_like(warped, ordered[0])
    if self.kind == 'halfrank':
      return np.interp(warped, np.sort(_half_rank(ordered)), ordered)
    return np.interp(warped, np.linspace(0.0, 1.0, len(ordered)), ordered)

  def to_study_direction(self, oriented: np.ndarray) -> np.ndarray:
    """What the surrogate reads: warped values in the study's own direction."""
    return oriented if self.maximize else -oriented

  def from_study_direction(self, samples: np.ndarray) -> np.ndarray:
    """Surrogate samples -> oriented (larger is better)."""
    return samples if self.maximize else -samples


def _half_rank(y: np.ndarray) -> np.ndarray:
  """Values [n] below their median -> median + spread * the normal score of their mid-rank
  (capped below the median, so the order is kept); spread: the root mean square of the upper
  half's distances to the median (the range where they are all equal)."""
  median = float(np.median(y))
  worse = y < median
  if not worse.any():
    return y.copy()
  upper = y[~worse] - median
  spread = float(np.sqrt(np.mean(upper ** 2))) or float(np.ptp(y))
  scores = norm.ppf((rankdata(y, method='average') - 0.5) / len(y))
  below = np.minimum(scores[worse], -_HALF_RANK_GAP)
  out = y.copy()
  out[worse] = median + spread * below
  return out


def _log_anchor(y: np.ndarray) -> tuple[float, float]:
  """(best value, floor of the gap) of the 'log' warp for values y [n]."""
  best = float(np.max(y))
  spread = float(np.ptp(y))
  return best, LOG_FLOOR * spread if spread > 0 else 1.0


def warp_columns(warps: list[YWarp], oriented: np.ndarray
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
  """Oriented values [k, m] (NaN: missing) -> (per objective the finite oriented values
  warped, the warped oriented values [k, m], the same in each study's direction [k, m])."""
  warped = np.full(oriented.shape, np.nan)
  study_units = np.full(oriented.shape, np.nan)
  observed = []
  for k, warp in enumerate(warps):
    rows = np.flatnonzero(np.isfinite(oriented[:, k]))
    observed.append(oriented[rows, k])
    warped[rows, k] = warp.warp(observed[k])
    study_units[rows, k] = warp.to_study_direction(warped[rows, k])
  return observed, warped, study_units


def median_in_units(warps: list[YWarp], samples: np.ndarray,
                    observed: list[np.ndarray]) -> list[float]:
  """One candidate's samples [S, m] (each surrogate's study direction) -> the median of each
  objective in the metric's units, mapped back through the values that were warped."""
  return [w.orient(w.unwarp(w.from_study_direction(np.median(samples[:, k])), observed[k]))
          for k, w in enumerate(warps)]
