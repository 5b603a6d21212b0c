"""`LMSurrogate`: the in-context OmniPred LM as the designer's `Surrogate` (the default).

Everything LM-specific lives here: the checkpoint, the device, torch threads, heap trimming,
and from some number of trials LoRA steps (`LMSurrogateConfig`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import attrs
import numpy as np
import torch
from vizier import pyvizier as vz

from vizier_omnipred import FineTuneConfig, OmniPredRegressor, StudyInfo, checkpoints
from vizier_omnipred import default_device
from vizier_omnipred.heap import release_free_memory
from vizier_omnipred.regressor import DEFAULT_VIEWS, MIN_TRAINING_EXAMPLES
from vizier_omnipred.relevance import RelevanceConfig


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
  # the parameters bound to the slot codes in other orders). 4 by measurement (the weights
  # of the shipped card's run 5, BBOB presets seed0 / seed1 against `views=1`): regret at 50
  # trials level (0.038 / 0.068 vs 0.039 / 0.066), pairs above random and quasi-random 30 of
  # 32 vs 27; 0.47 s vs 0.41 s per suggestion at 45-55 trials (`--preset latency`), a
  # 100-trial 8-D study's peak 942 vs 917 MB; held-out regression clearly better (README;
  # on the shipped weights 2 views lose most of the 4 views' gain).
  views: int = attrs.field(default=DEFAULT_VIEWS, kw_only=True,
                           validator=attrs.validators.ge(1))
  # Parameters the model reads, chosen per study by its own held-out likelihood of the
  # trials (`vizier_omnipred.relevance`); None: every parameter. Chosen again once the study
  # has grown by 20% (a choice costs ~1 s at 50 trials of an 8-D study). By measurement
  # (shipped weights, adaptive trust region, BBOB `--preset seed0 --designers
  # omnipred_reselect,omnipred_all_parameters`): regret at
  # 10 / 25 / 50 trials 0.118 / 0.051 / 0.029 against 0.131 / 0.079 / 0.037 reading every
  # parameter. With prior studies set, the predictions mix two readings of them equally
  # (`prior_studies='mixture'`): by measurement (`python -m benchmarks.transfer`, 16 related
  # left-out studies x 3 seeds) regret at 10 / 20 trials 0.070 / 0.032 against 0.109 / 0.035
  # reading them only as prior studies ('all'); see docs/design.md.
  relevance: RelevanceConfig | None = attrs.field(
      factory=lambda: RelevanceConfig(refresh_growth=0.2, prior_studies='mixture'),
      kw_only=True)

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
            'training_steps': 0, 'training_stopped_by': 'zero_shot',
            'condition_seconds': round(time.perf_counter() - start, 3), 'warm_start': False})
      steps = cfg.warm_start_steps if self._tuned else cfg.fine_tune.max_steps
      ft = attrs.evolve(cfg.fine_tune, max_steps=steps, seed=self._seed + len(examples),
                        time_budget_s=time_budget_s)
      report = self._regressor.fine_tune(examples, config=ft, warm_start=self._tuned,
                                         prior_studies=priors)
    warm, self._tuned = self._tuned, True
    return self._with_parameters_read({
        'training_steps': report.steps, 'training_stopped_by': report.stopped_by,
        'condition_seconds': round(report.seconds, 3), 'warm_start': warm})

  def _with_parameters_read(self, report: dict) -> dict:
    """`report` plus the parameters the model chose to read, when it chose (`relevance`)."""
    if self._regressor.prior_trials:
      report['prior_trials'] = ','.join(map(str, self._regressor.prior_trials))
    if self._regressor.pooled_trials:
      report['prior_pooled'] = ','.join(map(str, self._regressor.pooled_trials))
    if self._regressor.averaged_weight is not None:  # RelevanceConfig(prior_studies='averaged')
      report['prior_weight'] = f'{self._regressor.averaged_weight:.3f}'
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
