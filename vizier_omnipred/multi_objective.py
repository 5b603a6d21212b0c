"""Several metrics of one study: `MultiObjectiveRegressor` samples them together, [n, S, m].

    reg = MultiObjectiveRegressor(OmniPredRegressor.from_pretrained(), problem)
    reg.condition(completed_trials)                 # or (parameters, {metric: y}) pairs
    samples = reg.sample(rows, num_samples=64)      # [n, 64, num_metrics]

Each metric is read by the in-context LM from the trials that report a finite value of it
(an objective NaN in one metric still informs the others), with a prompt that names that
metric and its goal; all share one loaded base. The metrics are sampled jointly, by the chain
rule: metric k reads, beside a trial's parameters, its values of metrics 1..k-1 as number
items (absent where missing), so p(y1, y2 | x) = p(y1 | x) p(y2 | x, y1), and a candidate's
y2 is drawn at each of its own y1 samples (`OmniPredRegressor.sample_given`). Pretraining
teaches this read (`pretraining.multi_output_prior`). `joint=False` samples each metric from
the parameters alone, independently, as Vizier's multi-metric GP fits one GP per metric.

Joint samples carry each metric's trade-off with the others; each later metric's marginal also
carries the earlier ones' sampling error. The designer measured both and samples
independently by default (`OmniPredDesignerConfig.joint_objectives`, README).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.regressor import OmniPredRegressor
from vizier_omnipred.serialization import StudyInfo, _plain


class MultiObjectiveRegressor:
  """One in-context regressor per metric on a shared base."""

  def __init__(self, base: OmniPredRegressor, problem: vz.ProblemStatement,
               metric_names: Sequence[str] | None = None, *, joint: bool = True):
    """`metric_names`: the metrics to predict, in chain order (default: every OBJECTIVE of
    `problem`); `joint`: chain-rule samples (else independent per metric)."""
    names = list(metric_names) if metric_names is not None else [
        m.name for m in problem.metric_information if m.type == vz.MetricType.OBJECTIVE]
    if not names:
      raise ValueError('The problem has no objective metric; name the metrics to predict.')
    self.metric_names = names
    self.joint = joint
    self._regressors = []
    for k, name in enumerate(names):
      reg = base.for_new_study()
      reg.set_study(problem, study=StudyInfo.from_problem(problem, name),
                    metric_inputs=names[:k] if joint else ())
      self._regressors.append(reg)

  def condition(self, examples: Sequence[Any]) -> None:
    """examples: completed vz.Trials, or (parameters, {metric: y}) pairs. Each metric reads
    the examples where it is present and finite (infeasible trials are skipped); each needs
    at least 2."""
    for k, (name, reg) in enumerate(zip(self.metric_names, self._regressors)):
      inputs = reg.featurizer.metric_inputs
      pairs = [pair for pair in (_metric_example(i, ex, name, inputs)
                                 for i, ex in enumerate(examples)) if pair is not None]
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
    """-> [n, num_samples, num_metrics] float64 samples in each metric's own units; joint:
    sample s of every metric belongs to one draw."""
    if self.joint:
      return chain_rule_samples(self._regressors, rows, num_samples, seed=seed,
                                temperature=temperature)
    return np.stack([reg.sample(rows, num_samples, temperature=temperature, seed=seed + k)
                     for k, reg in enumerate(self._regressors)], axis=-1)


def chain_rule_samples(models: Sequence[Any], rows: Sequence[Any], num_samples: int, *,
                       seed: int, **kwargs) -> np.ndarray:
  """Joint samples [n, num_samples, m] by the chain rule: model 0 samples from the rows alone,
  model k at each of the rows' samples of models 0..k-1 (`sample_given`); model k's draws
  use seed + k. `kwargs` go to every call (e.g. temperature)."""
  out = [models[0].sample(rows, num_samples, seed=seed, **kwargs)]
  for k, model in enumerate(models[1:], start=1):
    out.append(model.sample_given(rows, np.stack(out, axis=-1), seed=seed + k, **kwargs))
  return np.stack(out, axis=-1)


def _metric_example(i: int, example: Any, name: str, inputs: Sequence[str] = ()
                    ) -> tuple[Any, float] | None:
  """(parameters plus the values of the metrics `inputs` (NaN where missing), y of `name`),
  or None when the example has no finite value of `name`."""
  if isinstance(example, vz.Trial):
    if example.infeasible or example.final_measurement is None:
      return None
    metrics = {k: m.value for k, m in example.final_measurement.metrics.items()}
    params = example.parameters
  elif isinstance(example, (tuple, list)) and len(example) == 2 and isinstance(example[1], Mapping):
    params, metrics = example
  else:
    raise TypeError(f'Example {i}: expected a vz.Trial or a (parameters, {{metric: y}}) pair,'
                    f' got {type(example).__name__}.')
  value = metrics.get(name)
  if value is None or not np.isfinite(float(value)):
    return None
  if inputs:
    params = dict(_plain(params), **{m: float(metrics.get(m, np.nan)) for m in inputs})
  return params, float(value)
