"""Optuna's distributions and trials as Vizier parameters, problems and trials.

A FloatDistribution is a DOUBLE (LINEAR or LOG scale), or with a `step` a DISCRETE parameter of
its grid; an IntDistribution an INTEGER (LOG scale when `log`), or with a `step` above 1 a
DISCRETE parameter; a CategoricalDistribution a CATEGORICAL parameter whose categories are the
choices' text (the model reads them: 'relu', 'None', 'True'), mapped back to the choices
themselves. Optuna objectives become OBJECTIVE metrics in the study's directions; its
constraints (`Trial.set_constraint`, or a sampler's `constraints_func`: feasible at <= 0)
become SAFETY metrics with threshold 0, so the designer models them as it does Vizier's.

Define-by-run spaces: `conditional_space` reads the finished trials' parameters for the
usual structure, a categorical that every trial has and parameters that appear exactly when
it takes some of its values (a model family and each family's own parameters), and makes
those parameters its children, so the designer works on a conditional Vizier space.
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

  def add_to(self, root: vz.SearchSpaceSelector):
    """Adds the parameter under `root` (or a parent's `select_values`); returns its
    selector."""
    d, name = self.distribution, self.name
    if isinstance(d, CategoricalDistribution):
      return root.add_categorical_param(name, self._labels)
    if self._grid is not None:
      return root.add_discrete_param(name, [float(v) for v in self._grid])
    if isinstance(d, IntDistribution):
      scale = vz.ScaleType.LOG if d.log else vz.ScaleType.LINEAR
      return root.add_int_param(name, int(d.low), int(d.high), scale_type=scale)
    if isinstance(d, FloatDistribution):
      scale = vz.ScaleType.LOG if d.log else vz.ScaleType.LINEAR
      return root.add_float_param(name, float(d.low), float(d.high), scale_type=scale)
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
  """An Optuna study's search space (a dict of distributions, some of them children of a
  categorical's values), objectives and constraints as one Vizier problem, and its trials as
  Vizier trials."""

  codecs: tuple[ParameterCodec, ...]
  metric_names: tuple[str, ...]
  directions: tuple[optuna.study.StudyDirection, ...]
  constraint_names: tuple[str, ...] = ()
  # child name -> (parent name, the parent's choices that make the child exist)
  parents: Mapping[str, tuple[str, tuple[Any, ...]]] = attrs.field(factory=dict)

  @classmethod
  def of(cls, study: optuna.Study, space: Mapping[str, BaseDistribution],
         constraint_names: Sequence[str] = (),
         parents: Mapping[str, tuple[str, tuple[Any, ...]]] | None = None) -> 'OptunaProblem':
    directions = tuple(study.directions)
    names = study.metric_names or (
        ['objective'] if len(directions) == 1
        else [f'objective_{k}' for k in range(len(directions))])
    return cls(codecs=tuple(ParameterCodec(n, d) for n, d in sorted(space.items())),
               metric_names=tuple(names), directions=directions,
               constraint_names=tuple(constraint_names), parents=dict(parents or {}))

  def codec(self, name: str) -> ParameterCodec:
    return next(c for c in self.codecs if c.name == name)

  def problem(self) -> vz.ProblemStatement:
    problem = vz.ProblemStatement()
    selectors = {c.name: c.add_to(problem.search_space.root) for c in self.codecs
                 if c.name not in self.parents}
    for codec in self.codecs:
      if codec.name in self.parents:
        parent, choices = self.parents[codec.name]
        labels = [self.codec(parent).to_vizier(v) for v in choices]
        codec.add_to(selectors[parent].select_values(labels))
    for name, direction in zip(self.metric_names, self.directions):
      goal = (vz.ObjectiveMetricGoal.MAXIMIZE if direction == optuna.study.StudyDirection.MAXIMIZE
              else vz.ObjectiveMetricGoal.MINIMIZE)
      problem.metric_information.append(vz.MetricInformation(name, goal=goal))
    for name in self.constraint_names:
      problem.metric_information.append(vz.MetricInformation(
          CONSTRAINT_PREFIX + name, goal=vz.ObjectiveMetricGoal.MINIMIZE, safety_threshold=0.0))
    return problem

  def _active(self, params: Mapping[str, Any]) -> list[ParameterCodec]:
    """The codecs a configuration with these parents' values has."""
    out = []
    for c in self.codecs:
      link = self.parents.get(c.name)
      if link is None or (link[0] in params and params[link[0]] in link[1]):
        out.append(c)
    return out

  def fits(self, trial: FrozenTrial) -> bool:
    """The trial holds every parameter that is active for it, under the same distribution."""
    return all(c.fits(trial) for c in self._active(trial.params))

  def holds(self, params: Mapping[str, Any]) -> bool:
    """`params` (taken for a running trial) holds every parameter active for them."""
    return all(c.name in params for c in self._active(params))

  def parameters(self, params: Mapping[str, Any]) -> dict[str, float | int | str]:
    return {c.name: c.to_vizier(params[c.name]) for c in self._active(params)}

  def partial_parameters(self, params: Mapping[str, Any]) -> dict[str, float | int | str]:
    """The parameters of the space that `params` holds (a define-by-run trial's)."""
    return {c.name: c.to_vizier(params[c.name]) for c in self.codecs if c.name in params}

  def optuna_params(self, parameters: vz.ParameterDict) -> dict[str, Any]:
    return {c.name: c.to_optuna(parameters[c.name].value) for c in self.codecs
            if c.name in parameters}

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


def conditional_space(trials: Sequence[FrozenTrial], shared: Mapping[str, BaseDistribution]
                      ) -> tuple[dict[str, BaseDistribution],
                                 dict[str, tuple[str, tuple[Any, ...]]]]:
  """The finished trials' define-by-run structure: -> (space, parents). `shared`: the
  parameters every trial has (Optuna's intersection space). Another parameter, under one
  distribution in every trial that has it, is a child of the first shared categorical (by
  name) whose values in the trials with it never occur in the trials without it; the
  parent's values seen with it make it exist. Parameters that fit no parent stay out."""
  space, parents = dict(shared), {}
  categoricals = sorted(n for n, d in shared.items() if isinstance(d, CategoricalDistribution))
  others: dict[str, BaseDistribution | None] = {}
  for t in trials:
    for name, d in t.distributions.items():
      if name not in shared:
        others[name] = d if others.get(name, d) == d else None  # None: two distributions
  for name, d in sorted(others.items()):
    if d is None:
      continue
    for parent in categoricals:
      with_it = {t.params[parent] for t in trials if name in t.params}
      without = {t.params[parent] for t in trials if name not in t.params}
      if not with_it & without:
        space[name] = d
        choices = shared[parent].choices
        parents[name] = (parent, tuple(c for c in choices if c in with_it))
        break
  return space, parents
