"""Vizier SAFETY metrics: soft constraints the designer models and respects.

A metric with a `safety_threshold` is safe at or above it (MAXIMIZE goal) or at or below it
(MINIMIZE), exactly as Vizier's `SafetyChecker` reads it (a trial without the metric counts as
safe). Each safety metric gets its own surrogate, conditioned on the raw values (no warping:
the threshold is in raw units); a candidate's probability of being safe is the share of its
samples on the safe side, multiplied over the metrics (read as independent).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from vizier import pyvizier as vz

from designers.surrogate import Surrogate, SurrogateFactory
from vizier_omnipred import StudyInfo
from vizier_omnipred.episodes import metric_value


class SafetyConstraints:
  """The problem's SAFETY metrics and one surrogate for each (none: every probability 1)."""

  def __init__(self, metrics: Sequence[vz.MetricInformation], surrogates: Sequence[Surrogate]):
    self.metrics = list(metrics)
    self._surrogates = list(surrogates)
    self._ready = [False] * len(self.metrics)  # conditioned on >= 2 values

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement,
                   factory: SurrogateFactory) -> 'SafetyConstraints':
    metrics = [m for m in problem.metric_information if m.type == vz.MetricType.SAFETY]
    return cls(metrics, [factory(problem, StudyInfo.from_problem(problem, m.name))
                         for m in metrics])

  def _safe_value(self, metric: vz.MetricInformation, value) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if metric.goal == vz.ObjectiveMetricGoal.MAXIMIZE:
      return value >= metric.safety_threshold
    return value <= metric.safety_threshold

  def is_safe(self, trial: vz.Trial) -> bool:
    if trial.final_measurement is None:
      return True
    values = trial.final_measurement.metrics
    return all(bool(self._safe_value(m, values[m.name].value)) for m in self.metrics
               if m.name in values and np.isfinite(values[m.name].value))

  def condition(self, trials: Sequence[vz.Trial], time_budget_s: float | None = None) -> None:
    """Each metric's surrogate reads the trials with a finite value of it (raw values)."""
    for k, (metric, surrogate) in enumerate(zip(self.metrics, self._surrogates)):
      values = [metric_value(t, metric.name) for t in trials]
      pairs = [(t.parameters, v) for t, v in zip(trials, values) if v is not None]
      self._ready[k] = len(pairs) >= 2
      if self._ready[k]:
        surrogate.condition([p for p, _ in pairs], np.asarray([v for _, v in pairs]),
                            time_budget_s=time_budget_s)

  def probability(self, parameters: Sequence, num_samples: int, *, seed: int) -> np.ndarray:
    """-> [n] probability that each candidate is safe (1 where nothing is known yet)."""
    out = np.ones(len(parameters))
    for k, (metric, surrogate) in enumerate(zip(self.metrics, self._surrogates)):
      if self._ready[k]:
        samples = surrogate.sample(parameters, num_samples, seed=seed + k)
        out *= self._safe_value(metric, samples).mean(axis=1)
    return out
