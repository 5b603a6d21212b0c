"""A local quadratic model's step: how the designer converges where the LM cannot resolve.

Near a smooth optimum every function is close to a quadratic, and a quadratic fitted to the
trials nearest the incumbent says where its minimum lies more finely than the LM's samples
rank moves there (docs/design.md, "Why OmniPred stalls on smooth functions": Spearman 0.67-0.71
within the trust region). This is the model-based trust-region step of derivative-free
optimisation (Powell's NEWUOA / BOBYQA; Conn, Scheinberg and Vicente 2009, ch. 10), with a
separable (diagonal) quadratic so that 2d + 1 coefficients suffice: about 1.5x that many trials
near the incumbent fit it, far fewer than a full quadratic's (d + 1)(d + 2) / 2.

The step is offered only when the fit predicts the trials it left out well (leave-one-out R^2,
from the hat matrix, above `min_fit`): on rugged functions (Rastrigin, Weierstrass) and noisy
ones it declines and the LM suggests as before. It minimises the model inside the box the
fitted trials span around the incumbent (no extrapolation beyond the data), which shrinks as
the trials it suggests gather at the optimum.
"""

from __future__ import annotations

import math

import attrs
import numpy as np


@attrs.frozen
class QuadraticStepConfig:
  """When the designer takes the quadratic model's step instead of the LM's suggestion."""

  # One model-phase suggestion in `every` is the step (when the fit holds); the others are
  # the LM's. 1: every suggestion whose fit holds, by measurement (docs/design.md,
  # `benchmarks/results/bbob_quadratic.md`, 16 BBOB pairs x 5 seeds): 11 of 16 pairs below
  # GP-UCB-PE's means against 9 with every other suggestion; the LM still suggests wherever
  # the fit fails (rugged functions, and the start of a study).
  every: int = attrs.field(default=1, kw_only=True, validator=attrs.validators.ge(1))
  # Trials fitted per coefficient (2d + 1 of them): the nearest to the incumbent.
  points_per_coefficient: float = attrs.field(default=1.5, kw_only=True,
                                              validator=attrs.validators.gt(1.0))
  # Leave-one-out R^2 of the fit below which no step is offered.
  min_fit: float = attrs.field(default=0.9, kw_only=True)
  # Ridge on the linear and quadratic coefficients (in span-scaled units), for a well-posed
  # solve when the fitted trials lie close to a subspace.
  ridge: float = attrs.field(default=1e-6, kw_only=True, validator=attrs.validators.ge(0.0))


@attrs.frozen
class Step:
  """point: [d] unit-cube point; fit: leave-one-out R^2; predicted: the model's decrease at
  the point, in standard deviations of the fitted values (> 0: lower than the incumbent);
  fitted: the trials the quadratic was fitted to."""

  point: np.ndarray
  fit: float
  predicted: float
  fitted: int


def num_fitted(dim: int, config: QuadraticStepConfig) -> int:
  """Trials a step fits in a space of `dim` continuous parameters."""
  return math.ceil(config.points_per_coefficient * (2 * dim + 1))


def propose(unit: np.ndarray, oriented: np.ndarray, config: QuadraticStepConfig
            ) -> Step | None:
  """unit [n, d] trials in the unit cube, oriented [n] their values (higher is better) ->
  the separable quadratic's minimiser near the best trial, or None when there are too few
  trials, the fit does not hold, or the model expects no decrease."""
  unit, f = np.asarray(unit, np.float64), -np.asarray(oriented, np.float64)
  n, d = unit.shape
  m = num_fitted(d, config)
  if n < m or not np.all(np.isfinite(f)):
    return None
  best = int(np.argmin(f))
  nearest = np.argsort(((unit - unit[best]) ** 2).sum(1), kind='stable')[:m]
  dx = unit[nearest] - unit[best]
  span = np.abs(dx).max(0)
  span = np.where(span > 0, span, 1.0)
  z = dx / span
  y = f[nearest]
  scale = y.std()
  if scale <= 0:
    return None
  y = (y - y.mean()) / scale
  design = np.concatenate([np.ones((m, 1)), z, 0.5 * z ** 2], 1)
  penalty = config.ridge * np.eye(design.shape[1])
  penalty[0, 0] = 0.0
  inverse = np.linalg.pinv(design.T @ design + penalty)
  coef = inverse @ design.T @ y
  leverage = np.einsum('ij,jk,ik->i', design, inverse, design)
  residual = (y - design @ coef) / np.maximum(1.0 - leverage, 1e-9)
  fit = 1.0 - float((residual ** 2).sum() / (y ** 2).sum())
  if not fit >= config.min_fit:
    return None
  g, h = coef[1:d + 1], coef[d + 1:]
  # Separable: each coordinate's minimum within [-1, 1] spans (and within the unit cube).
  low = np.maximum(-1.0, -unit[best] / span)
  high = np.minimum(1.0, (1.0 - unit[best]) / span)
  inner = np.clip(-g / np.where(h > 0, h, 1.0), low, high)
  ends = np.stack([low, high])
  at_end = ends[np.argmin(g * ends + 0.5 * h * ends ** 2, axis=0), np.arange(d)]
  step = np.where(h > 0, inner, at_end)
  decrease = -float(g @ step + 0.5 * h @ step ** 2)
  if not decrease > 0:
    return None
  return Step(point=np.clip(unit[best] + step * span, 0.0, 1.0), fit=fit, predicted=decrease,
              fitted=m)
