"""The seam between the designer and whatever models the objective.

The designer needs two things of a surrogate: take the study's feasible trials with their y
(already oriented and warped by the designer: larger is better), and draw y samples for
candidate parameters. Anything that does both plugs in: the in-context LM
(`lm_surrogate.LMSurrogate`, the default), a GP, a fixed function in a test. This module holds
the protocol and the objective collections, and imports nothing of torch itself; everything
LM-specific (checkpoint, device, torch threads, heap trimming, LoRA steps) lives in
`lm_surrogate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.multi_objective import chain_rule_samples
from vizier_omnipred.serialization import StudyInfo, _plain

if TYPE_CHECKING:
  from designers.lm_surrogate import LMSurrogate


class Surrogate(Protocol):
  """A model of one study's objective, in the designer's warped units."""

  def condition(self, parameters: Sequence[vz.ParameterDict], y: np.ndarray, *,
                time_budget_s: float | None = None) -> dict:
    """Reads the feasible trials (>= 2) and their y [n]; returns a report (str/number values)
    for the suggestion's metadata: any keys, and these ones the designer reads when present:
    `training_steps` (gradient steps spent on this study; 0 when it was only read),
    `training_stopped_by` ('time_budget' when `time_budget_s` cut it), `condition_seconds`,
    `parameters_read`. May stop early when `time_budget_s` runs out. A surrogate
    with `reads_prior_studies` True also takes `prior_studies=[(parameters, y), ...]`: other
    studies' trials, read beside these (`OmniPredDesigner.set_priors`)."""

  def sample(self, parameters: Sequence[vz.ParameterDict], num_samples: int, *,
             seed: int) -> np.ndarray:
    """-> [n, num_samples] y samples for the candidates, conditioned on the last `condition`."""


# How the policy factory and the designer build a surrogate for a study.
SurrogateFactory = Callable[[vz.ProblemStatement, StudyInfo], Surrogate]


class Objectives(Protocol):
  """Every objective of a study, modelled together: what the designer conditions and samples.
  m = 1 is the one-objective case."""

  surrogates: list  # one per objective, in the problem's order

  def condition(self, parameters: Sequence[vz.ParameterDict], y: np.ndarray, *,
                time_budget_s: float | None = None) -> dict:
    """y [n, m] (NaN where a trial has no usable value of an objective; each objective reads
    the trials with a finite value of it) -> a merged report."""

  def sample(self, parameters: Sequence[vz.ParameterDict], num_samples: int, *,
             seed: int) -> np.ndarray:
    """-> [n, num_samples, m]."""

  def quantiles(self, parameters: Sequence[vz.ParameterDict], levels: Sequence[float], *,
                seed: int) -> np.ndarray:
    """-> [n, len(levels), m] predictive quantiles (the acquisition search's cheap score)."""


def _merged_report(reports: list[dict]) -> dict:
  report = dict(reports[0])
  if len(reports) > 1:
    report['training_steps'] = sum(int(r.get('training_steps', 0)) for r in reports)
    report['condition_seconds'] = round(sum(float(r.get('condition_seconds', 0)) for r in reports), 3)
    # Per objective, in the problem's order ('*': that objective's model reads every one).
    if any('parameters_read' in r for r in reports):
      report['parameters_read'] = ' | '.join(r.get('parameters_read', '*') for r in reports)
    report['parameters_read_cut'] = any(r.get('parameters_read_cut') for r in reports)
  return report


# Draws a surrogate without exact quantiles gives for its quantiles (`Objectives.quantiles`).
FALLBACK_SAMPLES = 8


class IndependentObjectives:
  """One surrogate per objective, each sampled from the parameters alone (as Vizier's
  multi-metric GP fits one GP per metric). Any `Surrogate` plugs in."""

  def __init__(self, surrogates: Sequence[Surrogate]):
    self.surrogates = list(surrogates)

  def condition(self, parameters, y, *, time_budget_s=None, prior_studies=()) -> dict:
    """`prior_studies`: per objective, [(parameters, y)] of other studies (empty: none)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(parameters), len(self.surrogates))
    reports = []
    for k, surrogate in enumerate(self.surrogates):
      rows = np.flatnonzero(np.isfinite(y[:, k]))
      priors = prior_studies[k] if prior_studies else ()
      extra = {'prior_studies': priors} if priors else {}
      reports.append(surrogate.condition(self._inputs(k, parameters, y, rows), y[rows, k],
                                         time_budget_s=time_budget_s, **extra))
    return _merged_report(reports)

  def _inputs(self, k: int, parameters, y: np.ndarray, rows: np.ndarray) -> list:
    """What objective k's surrogate reads of the trials `rows`: their parameters."""
    del k, y
    return [parameters[i] for i in rows]

  def sample(self, parameters, num_samples, *, seed) -> np.ndarray:
    return np.stack([s.sample(parameters, num_samples, seed=seed + k)
                     for k, s in enumerate(self.surrogates)], axis=-1)

  def quantiles(self, parameters, levels, *, seed) -> np.ndarray:
    """-> [n, len(levels), m]: each objective's quantiles, exact where its surrogate has a
    `quantiles` method, else read off `FALLBACK_SAMPLES` draws."""
    out = []
    for k, s in enumerate(self.surrogates):
      if hasattr(s, 'quantiles'):
        out.append(s.quantiles(parameters, levels))
      else:
        draws = s.sample(parameters, FALLBACK_SAMPLES, seed=seed + k)
        out.append(np.quantile(draws, levels, axis=1).T)
    return np.stack(out, axis=-1)


class ChainedObjectives(IndependentObjectives):
  """Joint samples by the chain rule: objective k's LM reads, beside a trial's parameters, its
  values of objectives 1..k-1 (`metric_inputs`; NaN: an absent item), and a candidate's
  objective k is drawn at each of its own samples of the earlier ones (`sample_given`). The
  values are in the units the designer conditions on (oriented, warped), for inputs as for
  targets."""

  def __init__(self, surrogates: Sequence['LMSurrogate'], names: Sequence[str]):
    super().__init__(surrogates)
    self.names = list(names)
    for k, s in enumerate(self.surrogates):
      if tuple(s.regressor.featurizer.metric_inputs) != tuple(self.names[:k]):
        raise ValueError(f'Objective {self.names[k]!r}: its surrogate must read the metrics'
                         f' {self.names[:k]} as inputs (LMSurrogate(metric_inputs=...)).')

  def _inputs(self, k: int, parameters, y: np.ndarray, rows: np.ndarray) -> list:
    """Their parameters plus their values of objectives 1..k-1."""
    return [dict(_plain(parameters[i]), **dict(zip(self.names[:k], y[i, :k]))) for i in rows]

  def sample(self, parameters, num_samples, *, seed) -> np.ndarray:
    return chain_rule_samples(self.surrogates, parameters, num_samples, seed=seed)


def build_objectives(problem: vz.ProblemStatement, infos: Sequence[StudyInfo],
                     surrogate: Surrogate | None, factory: SurrogateFactory | None,
                     joint: bool) -> tuple[Objectives, SurrogateFactory | None]:
  """A designer's objectives: `surrogate` (one objective, no SAFETY metric), or one surrogate
  per objective from `factory` (default: the shipped LM), chained when `joint` and the factory
  `chains_objectives`. -> (the objectives, the factory the SAFETY metrics use too)."""
  names = [info.metric_name for info in infos]
  num_safety = sum(m.type == vz.MetricType.SAFETY for m in problem.metric_information)
  if surrogate is not None:
    if len(names) + num_safety > 1:
      raise ValueError(
          f'This problem has {len(names)} objectives {names} and {num_safety} safety'
          ' metrics: pass surrogate_factory (one surrogate per metric), not one surrogate.')
    return IndependentObjectives([surrogate]), None
  if factory is None:
    from designers.lm_surrogate import LMSurrogate  # pylint: disable=g-import-not-at-top  # the default
    factory = LMSurrogate.factory() if len(names) + num_safety > 1 else LMSurrogate
  if len(names) > 1 and joint and getattr(factory, 'chains_objectives', False):
    return ChainedObjectives([factory(problem, info, metric_inputs=names[:k])
                              for k, info in enumerate(infos)], names), factory
  return IndependentObjectives([factory(problem, info) for info in infos]), factory
