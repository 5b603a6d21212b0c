"""The user's other studies, as a designer reads them (`OmniPredDesigner.set_priors`).

A prior study is its completed trials, with its problem when that differs from the current
study's (a parameter missing or extra, other ranges or categories, another metric name). For
each objective of the current study, a prior study contributes its feasible trials' values
of the metric of the same name, or else of its own first objective, oriented by its own goal
and warped as the designer warps the current study's values (each study on its own: their
units need not agree, the model normalises each by its own values). Parameters are read as
they are, matched by name.
"""

from __future__ import annotations

from typing import Sequence, Union

import attrs
import numpy as np
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers.warping import YWarp
from vizier_omnipred import StudyInfo
from vizier_omnipred.episodes import metric_value

# What `set_priors` takes: Vizier's CompletedTrials (the current study's problem), or a
# (problem, trials) pair.
PriorStudyInput = Union[vza.CompletedTrials, tuple[vz.ProblemStatement, Sequence[vz.Trial]]]
# A prior study needs this many feasible trials to be read (its y is normalised by its own).
MIN_PRIOR_TRIALS = 2


@attrs.frozen
class PriorStudy:
  """One prior study: a name for the suggestion metadata, its problem (None: the current
  study's) and its completed trials."""

  name: str
  problem: vz.ProblemStatement | None
  trials: tuple[vz.Trial, ...]

  @classmethod
  def of(cls, study: PriorStudyInput, name: str) -> 'PriorStudy':
    if isinstance(study, vza.CompletedTrials):
      return cls(name, None, tuple(study.trials))
    if (isinstance(study, tuple) and len(study) == 2
        and isinstance(study[0], vz.ProblemStatement)):
      return cls(name, study[0], tuple(study[1]))
    raise TypeError(f'Prior study {name!r}: expected vza.CompletedTrials or a (problem, '
                    f'trials) pair, got {type(study).__name__}.')

  def metric_for(self, info: StudyInfo) -> tuple[str, bool]:
    """(metric name, maximize) that stands for the current study's objective `info`."""
    if self.problem is None:
      return info.metric_name, info.goal == 'MAXIMIZE'
    metrics = {m.name: m for m in self.problem.metric_information}
    metric = metrics.get(info.metric_name)
    if metric is None:
      objectives = [m for m in self.problem.metric_information
                    if m.type == vz.MetricType.OBJECTIVE]
      if not objectives:
        raise ValueError(f'Prior study {self.name!r} has no objective metric.')
      metric = objectives[0]
    return metric.name, metric.goal == vz.ObjectiveMetricGoal.MAXIMIZE

  def examples(self, info: StudyInfo, warp_kind: str, current_maximize: bool
               ) -> tuple[list[vz.ParameterDict], np.ndarray] | None:
    """(parameters, y) for the current objective `info`, y in the current study's direction
    and warp; None with fewer than MIN_PRIOR_TRIALS feasible trials."""
    name, maximize = self.metric_for(info)
    params, values = [], []
    for t in self.trials:
      value = metric_value(t, name)
      if value is not None:
        params.append(t.parameters)
        values.append(value)
    if len(values) < MIN_PRIOR_TRIALS:
      return None
    own = YWarp(maximize=maximize, kind=warp_kind)
    warped = own.warp(np.asarray([own.orient(v) for v in values]))
    current = YWarp(maximize=current_maximize, kind=warp_kind)
    return params, current.to_study_direction(warped)


def _ranked(prior: PriorStudy, info: StudyInfo) -> list[vz.Trial]:
  """The prior study's feasible trials, best first, by the metric that stands for the
  objective `info` in that study's own direction."""
  name, maximize = prior.metric_for(info)
  scored = [(metric_value(t, name), t) for t in prior.trials]
  scored = [(v, t) for v, t in scored if v is not None and np.isfinite(v)]
  scored.sort(key=lambda vt: -vt[0] if maximize else vt[0])
  return [t for _, t in scored]


def _sharing(priors: Sequence[PriorStudy], parameter_names: Sequence[str]
             ) -> list[PriorStudy]:
  """The prior studies that set at least one of `parameter_names`."""
  names = set(parameter_names)
  return [p for p in priors if any(names & set(t.parameters) for t in p.trials)]


def best_trials(priors: Sequence[PriorStudy], info: StudyInfo, per_study: int,
                parameter_names: Sequence[str]) -> list[vz.Trial]:
  """Each prior study's `per_study` best feasible trials for the objective `info` (by the
  metric that stands for it, in that study's own direction): every study's best, then every
  study's second best, and so on. A prior study that shares none of `parameter_names` gives
  none: its points have no place in the current study's space."""
  out = [_ranked(prior, info)[:per_study] for prior in _sharing(priors, parameter_names)]
  return [study[k] for k in range(per_study) for study in out if k < len(study)]


def best_share(priors: Sequence[PriorStudy], info: StudyInfo, share: float,
               parameter_names: Sequence[str]) -> list[vz.Trial]:
  """Each prior study's best `share` of its feasible trials (at least its best one) for the
  objective `info`; none from a prior study that shares none of `parameter_names`."""
  out = []
  for prior in _sharing(priors, parameter_names):
    ranked = _ranked(prior, info)
    out += ranked[:max(1, int(np.ceil(share * len(ranked))))]
  return out


def prior_examples(priors: Sequence[PriorStudy], infos: Sequence[StudyInfo],
                   warps: Sequence[YWarp]) -> tuple[list[list], list[str]]:
  """Per objective (`infos`, warped by `warps`), the prior studies' (parameters, y) that can
  be read; and the names of the prior studies read."""
  per_objective, read = [], []
  for info, warp in zip(infos, warps):
    studies = []
    for prior in priors:
      examples = prior.examples(info, warp.kind, warp.maximize)
      if examples is not None:
        studies.append(examples)
        if prior.name not in read:
          read.append(prior.name)
    per_objective.append(studies)
  return per_objective, read


def named(prior_studies: Sequence[PriorStudyInput],
          names: Sequence[str] | None = None) -> list[PriorStudy]:
  """`set_priors`'s arguments as PriorStudy's; names default to prior0, prior1, ..."""
  names = list(names) if names is not None else [f'prior{k}' for k in range(len(prior_studies))]
  if len(names) != len(prior_studies):
    raise ValueError(f'{len(names)} names for {len(prior_studies)} prior studies.')
  return [PriorStudy.of(study, name) for study, name in zip(prior_studies, names)]


def check_readable(surrogates: Sequence, *, chained: bool) -> None:
  """Raises unless every surrogate `reads_prior_studies` (and they are not chained)."""
  if chained or not all(getattr(s, 'reads_prior_studies', False) for s in surrogates):
    raise ValueError('This designer\'s surrogate cannot read prior studies: load a checkpoint '
                     'trained with them (ModelConfig.prior_studies, e.g. `pretrain '
                     '--family-fraction`), or do not set priors.')
