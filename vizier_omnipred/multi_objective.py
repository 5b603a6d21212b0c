"""Several metrics of one study: `MultiObjectiveRegressor` samples them together, [n, S, m].

    reg = MultiObjectiveRegressor(OmniPredRegressor.from_pretrained(), problem)
    reg.condition(completed_trials)                 # or (parameters, {metric: y}) pairs
    samples = reg.sample(rows, num_samples=64)      # [n, 64, num_metrics]

Each metric is read by the in-context LM from the trials that report a finite value of it
(an objective NaN in one metric still informs the others), with a prompt that names that
metric and its goal; all share one loaded base. The metrics are sampled independently given
the trials, as Vizier's multi-metric GP fits one GP per metric: a joint decoder that writes
every metric of a trial in one sequence would need multi-output pretraining (not done yet).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.regressor import OmniPredRegressor
from vizier_omnipred.serialization import StudyInfo


class MultiObjectiveRegressor:
  """One in-context regressor per metric on a shared base."""

  def __init__(self, base: OmniPredRegressor, problem: vz.ProblemStatement,
               metric_names: Sequence[str] | None = None):
    """`metric_names`: the metrics to predict (default: every OBJECTIVE of `problem`)."""
    names = list(metric_names) if metric_names is not None else [
        m.name for m in problem.metric_information if m.type == vz.MetricType.OBJECTIVE]
    if not names:
      raise ValueError('The problem has no objective metric; name the metrics to predict.')
    self.metric_names = names
    self._regressors = []
    for name in names:
      reg = base.for_new_study()
      reg.set_study(problem, study=StudyInfo.from_problem(problem, name))
      self._regressors.append(reg)

  def condition(self, examples: Sequence[Any]) -> None:
    """examples: completed vz.Trials, or (parameters, {metric: y}) pairs. Each metric reads
    the examples where it is present and finite (infeasible trials are skipped); each needs
    at least 2."""
    for name, reg in zip(self.metric_names, self._regressors):
      pairs = [pair for pair in (_metric_example(i, ex, name) for i, ex in enumerate(examples))
               if pair is not None]
      if len(pairs) < 2:
        raise ValueError(f'Metric {name!r} has {len(pairs)} finite values among the'
                         f' {len(examples)} examples; the context needs at least 2.')
      reg.condition(pairs)

  @property
  def num_context(self) -> dict[str, int]:
    """How many trials each metric reads."""
    return {name: reg.num_context for name, reg in zip(self.metric_names, self._regressors)}

  def sample(self, rows: Sequence[Any], num_samples: int = 64, *, temperature: float = 1.0,
             seed: int = 0) -> np.ndarray:
    """-> [n, num_samples, num_metrics] float64 samples in each metric's own units."""
    return np.stack([reg.sample(rows, num_samples, temperature=temperature, seed=seed + k)
                     for k, reg in enumerate(self._regressors)], axis=-1)


def _metric_example(i: int, example: Any, name: str) -> tuple[Any, float] | None:
  """(parameters, y of `name`) or None when the example has no finite value of it."""
  if isinstance(example, vz.Trial):
    if example.infeasible or example.final_measurement is None:
      return None
    metric = example.final_measurement.metrics.get(name)
    value = None if metric is None else metric.value
    params = example.parameters
  elif isinstance(example, (tuple, list)) and len(example) == 2 and isinstance(example[1], Mapping):
    params, value = example[0], example[1].get(name)
  else:
    raise TypeError(f'Example {i}: expected a vz.Trial or a (parameters, {{metric: y}}) pair,'
                    f' got {type(example).__name__}.')
  if value is None or not np.isfinite(float(value)):
    return None
  return params, float(value)
