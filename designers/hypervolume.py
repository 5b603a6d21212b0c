"""Pareto fronts, hypervolume and expected hypervolume improvement, all for MAXIMISATION.

Points are [k, m] arrays oriented so that larger is better in every objective; a reference
point `ref` [m] lies below every point that counts. Exact hypervolume by slicing along the
last objective (fine for the fronts of a 50-300 trial study and m <= 4); the expected
improvement of sampled points is exact for two objectives (a staircase integral, vectorised
over every sample) and a Monte Carlo estimate for more.
"""

from __future__ import annotations

import numpy as np

MC_POINTS = 4096  # uniform points for the Monte Carlo improvement (m >= 3)


def pareto_mask(points: np.ndarray) -> np.ndarray:
  """[k] bool: True where no other point is at least as good everywhere and better somewhere
  (of identical points, the first counts)."""
  p = np.asarray(points, dtype=np.float64)
  mine, other = p[:, None, :], p[None, :, :]  # [i, j]: does j beat i?
  dominated = np.all(other >= mine, axis=2) & np.any(other > mine, axis=2)
  index = np.arange(len(p))
  repeat = np.all(other == mine, axis=2) & (index[None, :] < index[:, None])
  return ~np.any(dominated | repeat, axis=1)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
  """Volume dominated by `points` [k, m] and above `ref` [m]."""
  points = np.asarray(points, dtype=np.float64)
  ref = np.asarray(ref, dtype=np.float64)
  if points.size == 0:
    return 0.0
  points = points[np.all(points > ref, axis=1)]
  if len(points) == 0:
    return 0.0
  if points.shape[1] == 1:
    return float(points[:, 0].max() - ref[0])
  points = points[pareto_mask(points)]
  order = np.argsort(-points[:, -1], kind='stable')
  levels = np.append(points[order, -1], ref[-1])
  total = 0.0
  for i in range(len(order)):
    height = levels[i] - levels[i + 1]
    if height > 0:
      total += height * hypervolume(points[order[:i + 1], :-1], ref[:-1])
  return total


def expected_improvement(samples: np.ndarray, front: np.ndarray, ref: np.ndarray, *,
                         rng: np.random.Generator | None = None) -> np.ndarray:
  """Mean hypervolume improvement over `front` [k, m] of each candidate's samples
  [n, S, m] -> [n]."""
  samples = np.asarray(samples, dtype=np.float64)
  n, s, m = samples.shape
  front = np.asarray(front, dtype=np.float64).reshape(-1, m)
  flat = samples.reshape(n * s, m)
  if m == 2:
    gain = _improvement_2d(flat, front, ref)
  else:
    gain = _improvement_mc(flat, front, ref, rng or np.random.default_rng(0))
  return gain.reshape(n, s).mean(axis=1)


def _improvement_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
  """Exact improvement of each point [N, 2] alone: the area of [ref, point] above the
  front's staircase h(t) = max{f2 : f1 >= t}."""
  front = front[np.all(front > ref, axis=1)]
  # Breakpoints of the staircase along objective 1: where h changes.
  xs = np.unique(np.concatenate([[ref[0]], front[:, 0]]))
  # h on each interval (xs[i], xs[i+1]]: the best f2 among front points with f1 >= xs[i+1].
  heights = np.array([front[front[:, 0] >= hi, 1].max(initial=ref[1]) for hi in xs[1:]]
                     + [ref[1]])
  lo = xs[None, :]
  hi = np.append(xs[1:], np.inf)[None, :]
  width = np.clip(np.minimum(hi, points[:, :1]) - lo, 0.0, None)
  depth = np.clip(points[:, 1:2] - heights[None, :], 0.0, None)
  return (width * depth).sum(axis=1)


def _improvement_mc(points: np.ndarray, front: np.ndarray, ref: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
  """Monte Carlo improvement for m >= 3: the share of uniform points in the box [ref, top]
  that a point dominates and the front does not, times the box's volume."""
  top = np.maximum(points.max(axis=0), front.max(axis=0, initial=-np.inf))
  top = np.maximum(top, ref + 1e-12)
  u = ref + rng.random((MC_POINTS, len(ref))) * (top - ref)
  free = ~np.any(np.all(front[None, :, :] >= u[:, None, :], axis=2), axis=1) if len(front) \
      else np.ones(len(u), dtype=bool)
  u = u[free]
  volume = float(np.prod(top - ref))
  out = np.empty(len(points))
  for lo in range(0, len(points), 1024):  # [1024, U, m] booleans at a time
    part = points[lo:lo + 1024]
    out[lo:lo + 1024] = np.all(u[None, :, :] <= part[:, None, :], axis=2).sum(axis=1)
  return out * volume / MC_POINTS
