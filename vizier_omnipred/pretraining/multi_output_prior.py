"""Synthetic studies with several objectives, for the in-context prior.

The designer samples several objectives jointly by the chain rule: objective k is predicted
from a trial's parameters AND its values of objectives 1..k-1, read as NUMBER items named by
their metrics (`Featurizer(metric_inputs=...)`). This prior teaches that regression. The
target is a flat study (`corpus.SyntheticStudy`, any objective kind); one or two other metrics
are drawn at the same points, each a mix of the standardised target (correlation rho uniform in
[-1, 1]: from a hard trade-off to two names for one thing) and an independent GP draw over the
same coordinates, with its own scale, sign, offset and an optional log warp. In half of the
studies some of the other metrics' values are missing (an absent item), as when a metric fails
to report on a trial.
"""

from __future__ import annotations

import copy

import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.pretraining import corpus
from vizier_omnipred.pretraining.gp_prior import GPFunction

MAX_OTHER_METRICS = 2
MISSING_PROBABILITY = 0.1  # per value, in the studies that have missing values
LOG_WARP_PROBABILITY = 0.25  # per other metric


class MultiOutputStudy:
  """A flat study whose trials also carry other metrics' values: `problem`, `metric_inputs`
  (the other metrics, in the order the chain reads them) and `draw(n, rng)`, as
  `corpus.SyntheticStudy` offers them; rows hold parameters and other metrics, y the target."""

  def __init__(self, seed: int, config: corpus.CorpusConfig = corpus.CorpusConfig(), *,
               split: str = 'train'):
    self.seed = seed
    self._target = corpus.SyntheticStudy(seed, config, split=split)
    rng = np.random.default_rng([seed, 6 if split == 'train' else 7])
    base = self._target.problem
    taken = set(self._target.parameter_names) | {m.name for m in base.metric_information}
    k = int(rng.integers(1, MAX_OTHER_METRICS + 1))
    names, goals = [], []
    for _ in range(k):
      goal = str(rng.choice(['MINIMIZE', 'MAXIMIZE']))
      pool = [m for m in corpus.METRICS[goal] if m not in taken]
      name = str(rng.choice(pool)) if pool else f'metric_{len(taken)}'
      taken.add(name)
      names.append(name)
      goals.append(goal)
    self.metric_inputs = tuple(names)
    self._rho = rng.uniform(-1.0, 1.0, k)
    self._gps = [GPFunction.draw(self._target.dim, rng, config.gp) for _ in range(k)]
    self._scale = 10.0 ** rng.uniform(-3, 3, k) * rng.choice([-1.0, 1.0], k)
    self._offset = rng.uniform(-1, 1, k) * 10.0 ** rng.uniform(-3, 3, k)
    self._log_warp = rng.random(k) < LOG_WARP_PROBABILITY
    self._missing = MISSING_PROBABILITY if rng.random() < 0.5 else 0.0
    problem = copy.deepcopy(base)
    for name, goal in zip(names, goals):
      problem.metric_information.append(
          vz.MetricInformation(name=name, goal=vz.ObjectiveMetricGoal[goal]))
    self.problem = problem  # the target is the first objective (what StudyInfo reads)

  def draw(self, n: int, rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    """n trials (parameters and other metrics, NaN where missing) and the target's values;
    every call is a new draw, as `SyntheticStudy.draw`."""
    rows, y = self._target.draw(n, rng)
    unit = (self._target.coordinates(rows) + 5.0) / 10.0
    spread = float(np.std(y))
    t = (y - np.mean(y)) / spread if spread > 0 else np.zeros(n)
    for j, name in enumerate(self.metric_inputs):
      rho = self._rho[j]
      other = rho * t + np.sqrt(1.0 - rho * rho) * self._gps[j].sample(unit, rng)
      if self._log_warp[j]:
        other = np.log1p(other - other.min())
      values = self._scale[j] * other + self._offset[j]
      values[rng.random(n) < self._missing] = np.nan
      for row, v in zip(rows, values):
        row[name] = float(v)
    return rows, y
