"""Optuna's distributions and trials as Vizier parameters, problems and trials.

A FloatDistribution is a DOUBLE (LINEAR or LOG scale), or with a `step` a DISCRETE parameter of
its grid; an IntDistribution an INTEGER (LOG scale when `log`), or with a `step` above 1 a
DISCRETE parameter; a CategoricalDistribution a CATEGORICAL parameter whose categories are the
choices' text (the model reads them: 'relu', 'None', 'True'), mapped back to the choices
themselves. Optuna objectives become OBJECTIVE metrics in the study's directions; its
constraints (`Trial.set_constraint`, or a sampler's `constraints_func`: feasible at <= 0)
become SAFETY metrics with threshold 0, so the designer models them as it does Vizier's.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import attrs
import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import FrozenTrial, TrialState
from vizier import pyvizier as vz

# A stepped float with more grid points than this is a DOUBLE whose value is rounded to the
# grid on the way back: the designer's candidate axis of a DISCRETE parameter lists every value.
MAX_GRID_VALUES = 1000
CONSTRAINT_PREFIX = 'constraint:'


@attrs.frozen
class ParameterCodec:
  """One Optuna parameter as a Vizier parameter, both ways."""

  name: str
  distribution: BaseDistribution

  @property
  def _grid(self) -> np.ndarray | None:
    d = self.distribution
    if isinstance(d, FloatDistribution) and d.step is not None:
      count = int(math.floor((d.high - d.low) / d.step + 1e-9)) + 1
      return d.low + d.step * np.arange(count) if count <= MAX_GRID_VALUES else None
    if isinstance(d, IntDistribution) and d.step > 1:
      return np.arange(d.low, d.high + 1, d.step)
    return None

  @property
  def _labels(self) -> list[str]:
    choices = self.distribution.choices
    labels = [str(c) for c in choices]
    if len(set(labels)) < len(labels):  # e.g. 1 and '1': tell them apart by position
      labels = [f'{i}:{c!r}' for i, c in enumerate(choices)]
    return labels

  def add_to(self, root: vz.SearchSpaceSelector) -> None:
    d, name = self.distribution, self.name
    if isinstance(d, CategoricalDistribution):
      root.add_categorical_param(name, self._labels)
    elif self._grid is not None:
      root.add_discrete_param(name, [float(v) for v in self._grid])
    elif isinstance(d, IntDistribution):
      scale = vz.ScaleType.LOG if d.log else vz.ScaleType.LINEAR
      root.add_int_param(name, int(d.low), int(d.high), scale_type=scale)
    elif isinstance(d, FloatDistribution):
      scale = vz.ScaleType.LOG if d.log else vz.ScaleType.LINEAR
      root.add_float_param(name, float(d.low), float(d.high), scale_type=scale)
    else:
      raise TypeError(f'Parameter {name!r} has distribution {type(d).__name__}, which '
                      'OmniPredSampler does not handle.')

  def to_vizier(self, value: Any) -> float | int | str:
    """An Optuna value (as `FrozenTrial.params` holds it) -> the Vizier parameter value."""
    d = self.distribution
    if isinstance(d, CategoricalDistribution):
      return self._labels[d.to_internal_repr(value)]
    grid = self._grid
    if grid is not None:
      return float(grid[int(np.argmin(np.abs(grid - float(value))))])
    if isinstance(d, IntDistribution):
      return int(min(d.high, max(d.low, int(round(float(value))))))
    return float(min(d.high, max(d.low, float(value))))

  def to_optuna(self, value: Any) -> Any:
    """A Vizier parameter value -> the value Optuna's `suggest_*` returns for it."""
    d = self.distribution
    if isinstance(d, CategoricalDistribution):
      return d.choices[self._labels.index(str(value))]
    if isinstance(d, IntDistribution):
      v = int(round(float(value)))
      v = d.low + int(round((v - d.low) / d.step)) * d.step
      return int(min(d.high, max(d.low, v)))
    v = float(value)
    if d.step is not None:
      v = d.low + round((v - d.low) / d.step) * d.step
    return float(min(d.high, max(d.low, v)))

  def fits(self, trial: FrozenTrial) -> bool:
    """The trial holds this parameter under the same distribution."""
    return self.name in trial.params and trial.distributions.get(self.name) == self.distribution


@attrs.frozen
class OptunaProblem:
  """An Optuna study's search space (one dict of distributions), objectives and constraints as
  one Vizier problem, and its trials as Vizier trials."""

  codecs: tuple[ParameterCodec, ...]
  metric_names: tuple[str, ...]
  directions: tuple[optuna.study.StudyDirection, ...]
  constraint_names: tuple[str, ...] = ()

  @classmethod
  def of(cls, study: optuna.Study, space: Mapping[str, BaseDistribution],
         constraint_names: Sequence[str] = ()) -> 'OptunaProblem':
    directions = tuple(study.directions)
    names = study.metric_names or (
        ['objective'] if len(directions) == 1
        else [f'objective_{k}' for k in range(len(directions))])
    return cls(codecs=tuple(ParameterCodec(n, d) for n, d in sorted(space.items())),
               metric_names=tuple(names), directions=directions,
               constraint_names=tuple(constraint_names))

  def problem(self) -> vz.ProblemStatement:
    problem = vz.ProblemStatement()
    for codec in self.codecs:
      codec.add_to(problem.search_space.root)
    for name, direction in zip(self.metric_names, self.directions):
      goal = (vz.ObjectiveMetricGoal.MAXIMIZE if direction == optuna.study.StudyDirection.MAXIMIZE
              else vz.ObjectiveMetricGoal.MINIMIZE)
      problem.metric_information.append(vz.MetricInformation(name, goal=goal))
    for name in self.constraint_names:
      problem.metric_information.append(vz.MetricInformation(
          CONSTRAINT_PREFIX + name, goal=vz.ObjectiveMetricGoal.MINIMIZE, safety_threshold=0.0))
    return problem

  def fits(self, trial: FrozenTrial, params: Mapping[str, Any] | None = None) -> bool:
    """The trial (or `params` taken for it) holds every parameter of the space, alike."""
    if params is not None:
      return all(c.name in params for c in self.codecs)
    return all(c.fits(trial) for c in self.codecs)

  def parameters(self, params: Mapping[str, Any]) -> dict[str, float | int | str]:
    return {c.name: c.to_vizier(params[c.name]) for c in self.codecs}

  def partial_parameters(self, params: Mapping[str, Any]) -> dict[str, float | int | str]:
    """The parameters of the space that `params` holds (a define-by-run trial's)."""
    return {c.name: c.to_vizier(params[c.name]) for c in self.codecs if c.name in params}

  def optuna_params(self, parameters: vz.ParameterDict) -> dict[str, Any]:
    return {c.name: c.to_optuna(parameters[c.name].value) for c in self.codecs}

  def completed(self, trial: FrozenTrial, id_: int) -> vz.Trial:
    """A finished Optuna trial as a completed Vizier trial: COMPLETE with its values (and
    constraint values), FAIL and PRUNED as infeasible (the designer avoids their region)."""
    out = vz.Trial(id=id_, parameters=self.parameters(trial.params))
    if trial.state != TrialState.COMPLETE or trial.values is None:
      reason = 'pruned' if trial.state == TrialState.PRUNED else 'failed'
      return out.complete(vz.Measurement(), infeasibility_reason=f'Optuna trial {reason}')
    metrics = dict(zip(self.metric_names, map(float, trial.values)))
    constraints = trial.constraints
    for name in self.constraint_names:
      if name in constraints:
        metrics[CONSTRAINT_PREFIX + name] = float(constraints[name])
    return out.complete(vz.Measurement(metrics=metrics))

  def active(self, params: Mapping[str, Any], id_: int) -> vz.Trial:
    return vz.Trial(id=id_, parameters=self.parameters(params))
