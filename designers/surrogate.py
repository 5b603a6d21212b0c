"""The seam between the designer and whatever models the objective.

The designer needs two things of a surrogate: take the study's feasible trials with their y
(already oriented and warped by the designer: larger is better), and draw y samples for
candidate parameters. Anything that does both plugs in: the in-context LM (`LMSurrogate`, the
default), a GP, a fixed function in a test. Everything LM-specific (checkpoint, device, torch
threads, heap trimming, LoRA steps) lives here, not in the designer.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Protocol, Sequence

import attrs
import numpy as np
import torch
from vizier import pyvizier as vz

from vizier_omnipred import FineTuneConfig, OmniPredRegressor, StudyInfo, checkpoints
from vizier_omnipred import default_device
from vizier_omnipred.heap import release_free_memory
from vizier_omnipred.regressor import DEFAULT_VIEWS, MIN_TRAINING_EXAMPLES
from vizier_omnipred.relevance import RelevanceConfig
from vizier_omnipred.serialization import _plain


class Surrogate(Protocol):
  """A model of one study's objective, in the designer's warped units."""

  def condition(self, parameters: Sequence[vz.ParameterDict], y: np.ndarray, *,
                time_budget_s: float | None = None) -> dict:
    """Reads the feasible trials (>= 2) and their y [n]; returns a report (str/number values)
    for the suggestion's metadata. May stop early when `time_budget_s` runs out. A surrogate
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
    report['fit_steps'] = sum(int(r.get('fit_steps', 0)) for r in reports)
    report['fit_seconds'] = round(sum(float(r.get('fit_seconds', 0)) for r in reports), 3)
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
    out = [self.surrogates[0].sample(parameters, num_samples, seed=seed)]
    for k, surrogate in enumerate(self.surrogates[1:], start=1):
      out.append(surrogate.sample_given(parameters, np.stack(out, axis=-1), seed=seed + k))
    return np.stack(out, axis=-1)


@attrs.frozen
class LMSurrogateConfig:
  """Every knob of the LM surrogate."""

  checkpoint: str | None = attrs.field(default=None, kw_only=True)  # None: shipped weights
  # Where the model runs. None: 'cuda' when torch sees a GPU, else 'cpu'.
  device: str | None = attrs.field(default=None, kw_only=True)
  temperature: float = attrs.field(default=1.0, kw_only=True)
  # How sample() draws S values per candidate: 'random' (Monte Carlo) or 'quantiles' (the
  # exact quantiles at levels (k + 1/2) / S, a stratified sample with no Monte Carlo error:
  # the 0.9-quantile of 16 normal draws, the UCB's, errs by 0.37 standard deviations and sits
  # 0.14 low on average). sample_given (chained objectives) always draws at random.
  # Random by measurement (`bbob.py --preset seed0 --designers omnipred_quantiles`, shipped
  # weights): regret@50 0.055 with quantiles vs 0.037 with draws, 5 wins in 16 studies. The
  # draws' noise is exploration the deterministic UCB loses (Sphere 8-D: 0.221 vs 0.039).
  draws: str = attrs.field(default='random', kw_only=True,
                           validator=attrs.validators.in_(('random', 'quantiles')))
  # Test-time LoRA from this many feasible trials on (None: never, zero-shot in context).
  # Off by default, by measurement (README regression table, shipped checkpoint): 40 LoRA
  # steps left study error on held-out BBOB and GP-prior studies unchanged or worse at 10, 30
  # and 100 trials, overconfident (coverage 0.57 vs 0.79), and lowered it only on the
  # scikit-learn tuning studies (0.156 -> 0.140 at 30); it also costs time (4 warm steps per
  # suggestion ~0.3 s at 50 trials, 10 steps ~0.7 s).
  lora_from_trials: int | None = attrs.field(default=None, kw_only=True)
  fine_tune: FineTuneConfig = attrs.field(factory=lambda: FineTuneConfig(max_steps=30),
                                          kw_only=True)
  warm_start_steps: int = attrs.field(default=4, kw_only=True)  # LoRA steps once warm
  # torch threads inside condition() and sample() (restored after; None: leave torch's
  # setting). The per-point model measured 3.0-3.3 s per suggestion on 1 thread against 6.2 s
  # on 2 (PASSIVE OpenMP, which this package sets) on a 2-core machine: the steps are too
  # small for a second thread to pay.
  torch_threads: int | None = attrs.field(default=1, kw_only=True)
  # After sampling, freed heap goes back to the OS once resident memory has grown this much
  # since the last time (glibc; elsewhere nothing happens). See vizier_omnipred/heap.py.
  heap_slack_mb: float = attrs.field(default=256.0, kw_only=True)
  # Views of the study each prediction averages in the encoder (`OmniPredRegressor.views`:
  # the parameters bound to the slot codes in other orders). 4 by measurement (stage-5
  # weights, `bbob.py --preset seed0` / `seed1` against `omnipred_1view`): regret at 50
  # trials level (0.038 / 0.068 vs 0.039 / 0.066), pairs above random and quasi-random 30 of
  # 32 vs 27; 0.47 s vs 0.41 s per suggestion at 45-55 trials (`--preset latency`), a
  # 100-trial 8-D study's peak 942 vs 917 MB; held-out regression clearly better (README;
  # on the shipped stage-6 weights 2 views lose most of the 4 views' gain).
  views: int = attrs.field(default=DEFAULT_VIEWS, kw_only=True,
                           validator=attrs.validators.ge(1))
  # Parameters the model reads, chosen per study by its own held-out likelihood of the
  # trials (`vizier_omnipred.relevance`); None: every parameter. Chosen again once the study
  # has grown by 20% (a choice costs ~1 s at 50 trials of an 8-D study). By measurement
  # (stage-6 weights, `bbob.py --preset seed0`, choosing at every suggestion): regret at
  # 10 / 25 / 50 trials 0.118 / 0.051 / 0.029 against 0.131 / 0.079 / 0.037 reading every
  # parameter.
  relevance: RelevanceConfig | None = attrs.field(
      factory=lambda: RelevanceConfig(refresh_growth=0.2), kw_only=True)

  @checkpoint.validator
  def _check_checkpoint(self, attribute, value):
    del attribute
    if value is not None:
      checkpoints.check_file(value)  # missing or empty fails here, not at the first study

  @device.validator
  def _check_device(self, attribute, value):
    del attribute
    if value is not None:
      try:
        torch.device(value)
      except RuntimeError as e:
        raise ValueError(f'device {value!r} is not a torch device: {e}') from None


class LMSurrogate:
  """The in-context OmniPred LM behind the `Surrogate` seam."""

  def __init__(self, problem: vz.ProblemStatement, study: StudyInfo, *,
               config: LMSurrogateConfig = LMSurrogateConfig(),
               regressor: OmniPredRegressor | None = None, seed: int = 0,
               metric_inputs: Sequence[str] = (), partial_rows: bool = False):
    """`regressor` overrides `config.checkpoint` and `config.views` (e.g. a tiny model in
    tests, or a loaded base shared by many studies); `metric_inputs`: other metrics the trials
    carry as inputs (`ChainedObjectives`); `partial_rows`: a trial may hold any subset of the
    problem's parameters (define-by-run spaces)."""
    self.config = config
    self._regressor = regressor or _pretrained(config)
    self._regressor.set_study(problem, study=study, metric_inputs=metric_inputs,
                              partial_rows=partial_rows)
    self._seed = seed
    self._tuned = False

  @property
  def reads_prior_studies(self) -> bool:
    """The model was trained to read other studies' trials (`ModelConfig.prior_studies`)."""
    return bool(self._regressor.base.model_config.prior_studies)

  @classmethod
  def factory(cls, config: LMSurrogateConfig = LMSurrogateConfig(), *,
              shared: OmniPredRegressor | None = None) -> 'LMSurrogateFactory':
    """Loads the checkpoint once (or takes `shared`, already loaded); every study gets its own
    regressor on the shared base."""
    return LMSurrogateFactory(config, shared or _pretrained(config))

  @property
  def regressor(self) -> OmniPredRegressor:
    return self._regressor

  @contextlib.contextmanager
  def _threads(self):
    previous = torch.get_num_threads()
    if self.config.torch_threads:
      torch.set_num_threads(self.config.torch_threads)
    try:
      yield
    finally:
      torch.set_num_threads(previous)

  def condition(self, parameters, y, *, time_budget_s=None, prior_studies=()) -> dict:
    cfg = self.config
    examples = [(p, float(v)) for p, v in zip(parameters, y)]
    priors = [[(p, float(v)) for p, v in zip(params, values)] for params, values in prior_studies]
    lora = (cfg.lora_from_trials is not None
            and len(examples) >= max(cfg.lora_from_trials, MIN_TRAINING_EXAMPLES))
    start = time.perf_counter()
    with self._threads():
      if not lora:
        self._regressor.condition(examples, prior_studies=priors)
        return self._with_parameters_read({
            'fit_steps': 0, 'fit_stopped_by': 'zero_shot',
            'fit_seconds': round(time.perf_counter() - start, 3), 'warm_start': False})
      steps = cfg.warm_start_steps if self._tuned else cfg.fine_tune.max_steps
      ft = attrs.evolve(cfg.fine_tune, max_steps=steps, seed=self._seed + len(examples),
                        time_budget_s=time_budget_s)
      report = self._regressor.fine_tune(examples, config=ft, warm_start=self._tuned,
                                         prior_studies=priors)
    warm, self._tuned = self._tuned, True
    return self._with_parameters_read({
        'fit_steps': report.steps, 'fit_stopped_by': report.stopped_by,
        'fit_seconds': round(report.seconds, 3), 'warm_start': warm})

  def _with_parameters_read(self, report: dict) -> dict:
    """`report` plus the parameters the model chose to read, when it chose (`relevance`)."""
    if self._regressor.prior_trials:
      report['prior_trials'] = ','.join(map(str, self._regressor.prior_trials))
    names = self._regressor.parameters_read
    if names is not None:
      report['parameters_read'] = ','.join(names)
      if self._regressor.selection.cut:  # the choice stopped at RelevanceConfig.max_scores
        report['parameters_read_cut'] = True
    return report

  def sample(self, parameters, num_samples, *, seed) -> np.ndarray:
    with self._threads():
      if self.config.draws == 'quantiles':
        levels = (np.arange(num_samples) + 0.5) / num_samples
        out = self._regressor.quantiles(parameters, levels, temperature=self.config.temperature)
      else:
        out = self._regressor.sample(parameters, num_samples,
                                     temperature=self.config.temperature, seed=seed)
    release_free_memory(self.config.heap_slack_mb)
    return out

  def quantiles(self, parameters, levels) -> np.ndarray:
    """-> [n, len(levels)] exact quantiles (the token tree, no sampling)."""
    with self._threads():
      out = self._regressor.quantiles(parameters, levels, temperature=self.config.temperature)
    release_free_memory(self.config.heap_slack_mb)
    return out

  def sample_given(self, parameters, given: np.ndarray, *, seed) -> np.ndarray:
    """given [n, S, k] values of the metric inputs -> [n, S], one sample at each."""
    with self._threads():
      out = self._regressor.sample_given(parameters, given, temperature=self.config.temperature,
                                         seed=seed)
    release_free_memory(self.config.heap_slack_mb)
    return out


@attrs.frozen
class LMSurrogateFactory:
  """A `SurrogateFactory` of LM surrogates on one loaded base; it also takes `metric_inputs`,
  so a designer can chain several objectives (`ChainedObjectives`)."""

  config: LMSurrogateConfig
  shared: OmniPredRegressor
  # Declares that its surrogates read other metrics' values (`metric_inputs`) and sample given
  # them (`sample_given`): what `ChainedObjectives` needs. A factory without it is sampled
  # independently.
  chains_objectives = True

  def __call__(self, problem: vz.ProblemStatement, study: StudyInfo, *,
               metric_inputs: Sequence[str] = (), partial_rows: bool = False) -> LMSurrogate:
    return LMSurrogate(problem, study, config=self.config,
                       regressor=self.shared.for_new_study(views=self.config.views,
                                                           relevance=self.config.relevance),
                       metric_inputs=metric_inputs, partial_rows=partial_rows)


def _pretrained(config: LMSurrogateConfig) -> OmniPredRegressor:
  """The checkpoint `config` names, on its device (None: CUDA when torch sees a GPU)."""
  return OmniPredRegressor.from_pretrained(config.checkpoint, views=config.views,
                                           relevance=config.relevance,
                                           device=config.device or default_device())


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
  factory = factory or (LMSurrogate.factory() if len(names) + num_safety > 1 else LMSurrogate)
  if len(names) > 1 and joint and getattr(factory, 'chains_objectives', False):
    return ChainedObjectives([factory(problem, info, metric_inputs=names[:k])
                              for k, info in enumerate(infos)], names), factory
  return IndependentObjectives([factory(problem, info) for info in infos]), factory
