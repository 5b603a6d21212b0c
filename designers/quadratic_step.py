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
the trials it suggests gather at the optimum; with `shrink`, also after each step that did not
improve (a trust region's radius). With `cross_terms`, the full quadratic is fitted as well
where the trials allow, and the better of the two fits steps. With `curvature_confidence`,
only the coordinates the fit resolves move freely (the others stay, or with `unresolved_share`
move within a share of the box).
"""

from __future__ import annotations

import math
from typing import Sequence

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
  # Trials fitted per coefficient (2d + 1 of them): the nearest the incumbent (or the
  # lowest: `fit_lowest`). 1.25 (the step from 22 trials in 8-D) won 8 of 16 BBOB pairs
  # against GP-UCB-PE's means, 1.5 won 11 (`bbob_quadratic.md`).
  points_per_coefficient: float = attrs.field(default=1.5, kw_only=True,
                                              validator=attrs.validators.gt(1.0))
  # Leave-one-out R^2 of the fit below which no step is offered. 0.5 measured level with 0.9
  # over 8 BBOB seeds (`bbob_quadratic_pooled.md`: 0.0264 against 0.0263), worse on the
  # held-out ones (0.0261 against 0.0251; Rastrigin 8-D 0.098 against 0.086, where more steps
  # replace the LM's exploration): 0.9 stays.
  min_fit: float = attrs.field(default=0.9, kw_only=True)
  # Ridge on the linear and quadratic coefficients (in span-scaled units), for a well-posed
  # solve when the fitted trials lie close to a subspace.
  ridge: float = attrs.field(default=1e-6, kw_only=True, validator=attrs.validators.ge(0.0))
  # Also fit the full quadratic (cross terms too: (d + 1)(d + 2) / 2 coefficients) where there
  # are `points_per_coefficient` times that many trials, and step with whichever of the two
  # predicts its left-out trials better (higher leave-one-out R^2). Measured worse where it
  # was meant to help: RosenbrockRotated 4-D 4.2e-4 against 1.3e-4 at 50 trials (its 23 trials
  # reach farther from the incumbent, where the valley is not quadratic; `bbob_quadratic.md`).
  # None: the separable fit alone.
  cross_terms: bool | None = attrs.field(default=None, kw_only=True)
  # After a step that did not improve on the best trial, the next step's box is this fraction
  # of the fitted trials' span (compounding over consecutive such steps; a step that improves
  # restores the whole span): a trust region's radius, shrunk where the model misled.
  # None: the whole span always. 0.5 is not the default: it brought BBOB Ellipsoidal 8-D from
  # 1.0e-3 to 2.3e-4 on the seeds it was tried on (0-4) but not on seeds 5-7 (2.1e-3 against
  # 1.4e-3), and StepEllipsoidal's plateaus read as failures on both
  # (`bbob_quadratic.md`, `bbob_quadratic_heldout.md`).
  shrink: float | None = attrs.field(default=None, kw_only=True)
  # A coordinate moves only where the fit resolves it: its curvature positive, or its slope
  # away from zero, by at least this many standard errors (least squares' own); the others
  # keep the incumbent's value. Where a few coordinates dominate the values (an
  # ill-conditioned bowl), the others' fitted curvatures and slopes are noise, and minimising
  # them sends those coordinates to the box's edges. None: every coordinate moves. None by
  # measurement (2.0 tried; `bbob_quadratic.md`, `bbob_quadratic_heldout.md`): Ellipsoidal 8-D
  # 2.0e-4 against 1.0e-3 on seeds 0-4 but 1.6e-3 against 1.4e-3 on seeds 5-7, and on
  # StepEllipsoidal's plateaus a coordinate held still stays on its step (8-D 4.1e-3 against
  # 7.3e-4 and 1.3e-3); 9 of 16 pairs below GP-UCB-PE's means against 11.
  curvature_confidence: float | None = attrs.field(
      default=None, kw_only=True,
      validator=attrs.validators.optional(attrs.validators.gt(0.0)))
  # With `curvature_confidence`: the coordinates the fit does not resolve still move, within
  # this share of the box the others search (the fitted model's minimum there), so that they
  # keep varying among the trials the next fits read and can become resolved. None: they keep
  # the incumbent's value. With 0.25 and `curvature_confidence=2.0` (`bbob_quadratic.md`,
  # seeds 0-4): 12 of 16 pairs below GP-UCB-PE's means and 15 within 10x (the plain step: 11
  # and 14), mean 0.0262 against 0.0270; but on seeds 5-7 (`bbob_quadratic_heldout.md`) mean
  # 0.0262 against 0.0251, Ellipsoidal 8-D 1.5e-3 against 1.4e-3: not the step's default.
  unresolved_share: float | None = attrs.field(default=None, kw_only=True)
  # Fit the trials with the lowest values instead of those nearest the incumbent (as many).
  # On an ill-conditioned bowl the nearest trials' values are the steep coordinates' alone;
  # among the lowest, the steep coordinates sit near their optimum and the next ones show.
  # None: the nearest, by measurement (`bbob_quadratic_pooled.md`, 8 seeds): Ellipsoidal 8-D
  # 4.6e-4 against 1.2e-3 (GP-UCB-PE's 1.4e-4), Ellipsoidal 4-D below the GP, but on
  # StepEllipsoidal 8-D 5.4e-3 against 9.3e-4 (the lowest trials share a plateau and the
  # steps stall there: seed 7 ends at 0.041) and mean 0.0269 against 0.0263.
  fit_lowest: bool | None = attrs.field(default=None, kw_only=True)
  # After a step that did not improve on the best trial, the next step fits the other trials
  # (the lowest instead of the nearest, or back; `fits_lowest`): where one selection fails the
  # other may hold (the nearest overshoot on an ill-conditioned bowl, the lowest stall on
  # plateaus). None: the same trials every step, by measurement (`bbob_quadratic_pooled.md`,
  # 8 seeds, from the nearest): Ellipsoidal 8-D 2.7e-4 against 1.2e-3, but StepEllipsoidal
  # 8-D 4.7e-3 against 9.3e-4 (seed 7 still stalls), AttractiveSector 8-D 4.3e-3 against
  # 4.0e-4, mean 0.0269 against 0.0263.
  switch_on_failure: bool | None = attrs.field(default=None, kw_only=True)
  # With `fit_lowest`: where the lowest trials give no step (their fit does not hold, or it
  # expects no decrease), fit the nearest the incumbent instead. On a plateau the lowest
  # trials' values are nearly tied, no quadratic fits them, and without a step the LM
  # suggests. None by measurement (`bbob_quadratic_pooled.md`, 8 seeds): it mends the stall
  # (StepEllipsoidal 8-D 9.0e-4 against `fit_lowest`'s 5.4e-3) and is the lowest variant on
  # Ellipsoidal and RosenbrockRotated, but AttractiveSector 8-D 4.6e-3 against 4.0e-4 (one
  # seed of eight), mean 0.0273 against the plain step's 0.0263; 11 pairs below GP-UCB-PE.
  # On seeds 8-11 (`bbob_quadratic_fresh.md`) level (0.0246 against 0.0245), 13 pairs below
  # the GP against 11, and within 10x on Ellipsoidal 4-D where the plain step is 18x.
  nearest_fallback: bool | None = attrs.field(default=None, kw_only=True)

  @shrink.validator
  @unresolved_share.validator
  def _check_share(self, attribute, value):
    if value is not None and not 0.0 < value < 1.0:
      raise ValueError(f'{attribute.name} must be in (0, 1), got {value!r}.')

  def __attrs_post_init__(self):
    if self.nearest_fallback and not self.fit_lowest:
      raise ValueError('nearest_fallback is the fallback of fit_lowest (the nearest trials are '
                       'fitted by default): set fit_lowest=True too, or leave nearest_fallback '
                       f'unset (got nearest_fallback={self.nearest_fallback!r}).')
    if self.unresolved_share is not None and self.curvature_confidence is None:
      raise ValueError('unresolved_share applies only to the coordinates curvature_confidence '
                       'leaves unresolved: set curvature_confidence too, or leave '
                       f'unresolved_share unset (got unresolved_share={self.unresolved_share!r}).')

  def fits_lowest(self, failed_steps: int) -> bool:
    """Whether the step fits the lowest trials (else the nearest the incumbent) after
    `failed_steps` consecutive steps that did not improve on the best trial."""
    return bool(self.fit_lowest) != bool(self.switch_on_failure and failed_steps % 2)

  def radius(self, failed_steps: int) -> float:
    """The step's box, in spans of the fitted trials, after `failed_steps` consecutive steps
    that did not improve on the best trial."""
    return 1.0 if self.shrink is None else self.shrink ** failed_steps


@attrs.frozen
class Step:
  """point: [d] unit-cube point; fit: leave-one-out R^2; predicted: the model's decrease at
  the point, in standard deviations of the fitted values (> 0: lower than the incumbent);
  fitted: the trials the quadratic was fitted to; radius: the box searched, in spans of them."""

  point: np.ndarray
  fit: float
  predicted: float
  fitted: int
  radius: float = 1.0


def num_fitted(dim: int, config: QuadraticStepConfig, cross_terms: bool = False) -> int:
  """Trials a step fits in a space of `dim` continuous parameters (`cross_terms`: the full
  quadratic's)."""
  coefficients = (dim + 1) * (dim + 2) // 2 if cross_terms else 2 * dim + 1
  return math.ceil(config.points_per_coefficient * coefficients)


def failed_steps(is_step: Sequence[bool], oriented: Sequence[float]) -> int:
  """Consecutive steps, most recent last, that did not improve on the best trial before them
  (trials in order; `is_step`: which were steps; oriented: higher is better)."""
  failed, best = 0, -math.inf
  for step, value in zip(is_step, oriented):
    if step:
      failed = 0 if value > best else failed + 1
    best = max(best, value)
  return failed


def propose(unit: np.ndarray, oriented: np.ndarray, config: QuadraticStepConfig,
            radius: float = 1.0, lowest: bool | None = None) -> Step | None:
  """unit [n, d] trials in the unit cube, oriented [n] their values (higher is better) ->
  the quadratic's minimiser within `radius` spans of the fitted trials around the best trial,
  or None when there are too few trials, the fit does not hold, or the model expects no
  decrease. lowest: fit the lowest trials, not the nearest (None: `config.fit_lowest`); with
  `config.nearest_fallback`, the nearest where the lowest give no step."""
  unit, f = np.asarray(unit, np.float64), -np.asarray(oriented, np.float64)
  if not np.all(np.isfinite(f)):
    return None
  kinds = (False, True) if config.cross_terms else (False,)  # with cross terms or not
  lowest = bool(config.fit_lowest if lowest is None else lowest)
  incumbent = unit[int(np.argmin(f))]
  selections = (True, False) if lowest and config.nearest_fallback else (lowest,)
  for selection in selections:
    fits = [x for x in (_fit(unit, f, config, cross, selection) for cross in kinds)
            if x is not None]
    step = _step(incumbent, max(fits, key=lambda x: x.fit), radius) if fits else None
    if step is not None:
      return step
  return None


@attrs.frozen
class _Fit:
  """A quadratic c + g.z + z'Hz / 2 in z = (x - incumbent) / span; fit: leave-one-out R^2."""

  g: np.ndarray
  hessian: np.ndarray
  span: np.ndarray
  fit: float
  fitted: int
  reach: np.ndarray  # [d] each coordinate's share of the step's box (0: held)


def _fit(unit: np.ndarray, f: np.ndarray, config: QuadraticStepConfig, cross: bool,
         lowest: bool) -> _Fit | None:
  n, d = unit.shape
  m = num_fitted(d, config, cross)
  if n < m:
    return None
  best = int(np.argmin(f))
  order = f if lowest else ((unit - unit[best]) ** 2).sum(1)
  chosen = np.argsort(order, kind='stable')[:m]
  dx = unit[chosen] - unit[best]
  span = np.abs(dx).max(0)
  span = np.where(span > 0, span, 1.0)
  z = dx / span
  y = f[chosen]
  scale = y.std()
  if scale <= 0:
    return None
  y = (y - y.mean()) / scale
  pairs = np.triu_indices(d, 1) if cross else (np.zeros(0, int), np.zeros(0, int))
  design = np.concatenate([np.ones((m, 1)), z, 0.5 * z ** 2, z[:, pairs[0]] * z[:, pairs[1]]], 1)
  penalty = config.ridge * np.eye(design.shape[1])
  penalty[0, 0] = 0.0
  inverse = np.linalg.pinv(design.T @ design + penalty)
  coef = inverse @ design.T @ y
  leverage = np.einsum('ij,jk,ik->i', design, inverse, design)
  residual = (y - design @ coef) / np.maximum(1.0 - leverage, 1e-9)
  fit = 1.0 - float((residual ** 2).sum() / (y ** 2).sum())
  if not fit >= config.min_fit:
    return None
  curvature = coef[d + 1:2 * d + 1]
  reach = np.ones(d)
  if config.curvature_confidence is not None:
    variance = ((y - design @ coef) ** 2).sum() / max(m - design.shape[1], 1)
    error = np.sqrt(variance * np.diag(inverse))
    resolved = ((curvature > config.curvature_confidence * error[d + 1:2 * d + 1])
                | (np.abs(coef[1:d + 1]) > config.curvature_confidence * error[1:d + 1]))
    reach = np.where(resolved, 1.0, config.unresolved_share or 0.0)
  hessian = np.diag(curvature)
  hessian[pairs] = hessian[pairs[::-1]] = coef[2 * d + 1:]
  return _Fit(g=coef[1:d + 1], hessian=hessian, span=span, fit=fit, fitted=m, reach=reach)


# Sweeps of coordinate descent that minimise a quadratic with cross terms in the box when its
# Newton point is outside (a separable one needs one); it stops early once a sweep moves no
# coordinate by more than 1e-12.
_SWEEPS = 200


def _step(incumbent: np.ndarray, model: _Fit, radius: float) -> Step | None:
  """The model's minimum within [-radius, radius] spans of the incumbent (and within the
  unit cube): Newton's point where the Hessian is positive definite and the point inside the
  box; else exact minimisation along one coordinate at a time from the incumbent (at a
  coordinate where the curvature is not positive, the lower end of its range)."""
  g, hessian, span = model.g, model.hessian, model.span
  d = len(g)
  low = np.minimum(np.maximum(-radius * model.reach, -incumbent / span), 0.0)
  high = np.maximum(np.minimum(radius * model.reach, (1.0 - incumbent) / span), 0.0)
  step = np.zeros(d)
  sweeps = 1  # exact for a separable quadratic
  if np.count_nonzero(hessian - np.diag(np.diag(hessian))):
    sweeps = _SWEEPS
    if np.all(np.linalg.eigvalsh(hessian) > 0):
      newton = np.linalg.solve(hessian, -g)
      if np.all((newton >= low) & (newton <= high)):
        step, sweeps = newton, 0
  for _ in range(sweeps):
    moved = 0.0
    for i in range(d):
      gi = g[i] + hessian[i] @ step - hessian[i, i] * step[i]
      h = hessian[i, i]
      if h > 0:
        new = np.clip(-gi / h, low[i], high[i])
      else:
        ends = np.asarray([low[i], high[i]])
        new = ends[np.argmin(gi * ends + 0.5 * h * ends ** 2)]
      moved = max(moved, abs(new - step[i]))
      step[i] = new
    if moved < 1e-12:
      break
  decrease = -float(g @ step + 0.5 * step @ hessian @ step)
  if not decrease > 0:
    return None
  return Step(point=np.clip(incumbent + step * span, 0.0, 1.0), fit=model.fit,
              predicted=decrease, fitted=model.fitted, radius=radius)
