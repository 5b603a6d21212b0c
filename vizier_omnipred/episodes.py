"""What the model reads: a study's examples as rows and y, y scaled, and episodes.

An episode is one study's trials split into a context (the trials the model reads with their
y) and queries (the trials whose y it predicts). Pretraining (`pretraining.trainer`), the
parameter choice (`relevance`) and test-time training (`fine_tuning`) all build theirs with
`episode`, so y reaches the model exactly as it does at prediction time: an affine map of
the context's range onto [2, 3] (`YScaler`). One order of magnitude, so the exponent token is
nearly constant and the digits carry the value; y of any scale (1e-300 .. 1e300, negative,
constant) is handled here, not by the tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

import attrs
import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.numbers import NumberCodec
from vizier_omnipred.serialization import ModelInputs, StudyInputs, _plain

Example = Any  # a vz.Trial, or a (parameters mapping, float y) pair
# Largest normalised |y| a target may have: beyond it the y codec's exponent runs out, and such
# a value (1e8 context ranges away) is as good as infinite to the loss.
Z_CLIP = 1e8
# An episode needs two context trials (YScaler needs a range) and one query.
MIN_TRAINING_EXAMPLES = 3


@attrs.frozen
class YScaler:
  """Affine map of the training y range [lo, hi] onto [2, 3]; overflow-safe for any floats."""

  lo: float
  half_span: float  # (hi - lo) / 2, computed without overflow; 0.5 when y is constant

  @classmethod
  def fit(cls, y: np.ndarray) -> 'YScaler':
    y = np.asarray(y, dtype=np.float64)
    lo, hi = float(y.min()), float(y.max())
    half_span = hi / 2 - lo / 2
    if not half_span > 0:
      half_span = max(abs(lo) / 2, 0.5) if lo != 0 else 0.5
    return cls(lo=lo, half_span=half_span)

  def transform(self, y: np.ndarray) -> np.ndarray:
    return 2.0 + (np.asarray(y, np.float64) / 2 - self.lo / 2) / self.half_span

  def inverse(self, z: np.ndarray) -> np.ndarray:
    with np.errstate(over='ignore'):
      out = 2.0 * ((np.asarray(z, np.float64) - 2.0) * self.half_span + self.lo / 2)
    return np.clip(out, -np.finfo(np.float64).max, np.finfo(np.float64).max)


def normalised(y: np.ndarray) -> np.ndarray:
  """A prior study's y, scaled by its own values (clipped to what the y codec writes)."""
  return np.clip(YScaler.fit(y).transform(y), -Z_CLIP, Z_CLIP)


def episode(items: ModelInputs, meta: ModelInputs, y: np.ndarray, num_context: int,
            codec: NumberCodec, prior_y: Sequence[np.ndarray] = ()
            ) -> tuple[StudyInputs, np.ndarray]:
  """Trials `items` [N, P] (the context first) and their y [N] -> (inputs, the queries'
  targets as y slot ids [N - num_context, T]). y is normalised by the context alone, as at
  prediction time.

  `prior_y`: the y of prior studies (`ModelConfig.prior_studies`) whose trials come first in
  `items`, before the current study's; each is normalised by its own values, and all of them
  are context."""
  z = np.clip(YScaler.fit(y[:num_context]).transform(y), -Z_CLIP, Z_CLIP)
  if not prior_y:
    return StudyInputs.build(items, meta, z[:num_context], num_context), codec.encode_many(
        z[num_context:])
  priors = [normalised(p) for p in prior_y]
  study = np.concatenate([np.full(len(p), k + 1) for k, p in enumerate(priors)]
                         + [np.zeros(len(y))])
  n_prior = sum(len(p) for p in priors)
  inputs = StudyInputs.build(items, meta, np.concatenate(priors + [z[:num_context]]),
                             n_prior + num_context, study=study)
  return inputs, codec.encode_many(z[num_context:])


def rows_and_y(examples: Sequence[Example], metric: str | None, *, what: str = 'Example'
               ) -> tuple[list[dict], np.ndarray]:
  """Examples (Vizier trials, or (parameters, y) pairs) -> (plain rows, finite y [n]); a bad
  one raises naming it (`what` i)."""
  rows, ys = [], []
  for i, ex in enumerate(examples):
    if isinstance(ex, vz.Trial):
      rows.append(_plain(ex.parameters))
      ys.append(_trial_y(i, ex, metric))
    elif isinstance(ex, (tuple, list)) and len(ex) == 2:
      rows.append(_plain(ex[0]))
      try:
        ys.append(float(ex[1]))
      except (TypeError, ValueError):
        raise ValueError(f'{what} {i}: y must be a number, got {ex[1]!r}.') from None
    else:
      raise TypeError(
          f'{what} {i}: expected a vz.Trial or a (parameters, y) pair, got {type(ex).__name__}.')
  y = np.asarray(ys, dtype=np.float64)
  bad = np.flatnonzero(~np.isfinite(y))
  if bad.size:
    raise ValueError(f'{what} {bad[0]}: y is {float(y[bad[0]])!r}; y must be finite.')
  return rows, y


def metric_value(trial: vz.Trial, name: str) -> float | None:
  """A completed, feasible trial's finite value of metric `name`; else None (the one rule for
  which trials a model may read as numbers)."""
  if trial.infeasible or trial.final_measurement is None:
    return None
  metric = trial.final_measurement.metrics.get(name)
  if metric is None or not np.isfinite(metric.value):
    return None
  return float(metric.value)


def _trial_y(i: int, trial: vz.Trial, metric: str | None) -> float:
  where = f'Trial {i} (id {trial.id})'
  if trial.infeasible:
    raise ValueError(f'{where} is infeasible; pass only feasible trials to fine_tune.')
  fm = trial.final_measurement
  if fm is None:
    raise ValueError(f'{where} has no final measurement; it is not completed.')
  if metric is None or metric not in fm.metrics:
    names = list(fm.metrics)
    if metric is None and len(names) == 1:
      metric = names[0]
    else:
      raise ValueError(f'{where} has no metric {metric!r}; it has {names}.')
  return float(fm.metrics[metric].value)
