"""`OmniPredRegressor`: condition a pretrained in-context LM on one study's trials, sample y.

    reg = OmniPredRegressor.from_pretrained()          # the shipped checkpoint
    reg.condition([({'x': 0.3, 'opt': 'adam'}, 1.7), ...])   # or Vizier trials + problem
    samples = reg.sample([{'x': 0.5, 'opt': 'sgd'}], num_samples=64)   # [1, 64]
    pred = reg.predict(rows)                           # median, mean, quantiles
    reg.fine_tune(examples)                            # condition + LoRA steps on the study

The model reads the study's trials (the context) together with the rows to predict, so
`condition` is all a prediction needs; `fine_tune` adds test-time adaptation (peft LoRA on
random context/query splits of the same trials). `condition` also chooses which parameters
the model reads: those whose absence would lower its held-out likelihood of the trials
(`relevance`; `relevance=None` reads them all).

The regressor is the predictor; what the model reads (rows, y scaling, episodes) is in
`episodes`, test-time training in `fine_tuning`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Sequence

import attrs
import numpy as np
import torch
from vizier import pyvizier as vz

from vizier_omnipred import checkpoints
from vizier_omnipred.decoding import quantile_ids, sample_ids
from vizier_omnipred.episodes import (MIN_TRAINING_EXAMPLES, Example, YScaler, episode,
                                      normalised, rows_and_y)
from vizier_omnipred.fine_tuning import FineTuneConfig, FineTuner, FineTuneReport, import_peft
from vizier_omnipred.model import MAX_PRIOR_STUDIES, ModelConfig, OmniPredModel, slot_permutations
from vizier_omnipred.relevance import HeldOutLikelihood, PriorChoice, RelevanceConfig, Selection
from vizier_omnipred.relevance import PooledLikelihood
from vizier_omnipred.relevance import averaged_weight, pooled_values, select_parameters
from vizier_omnipred.relevance import select_prior_studies
from vizier_omnipred.relevance import still_current, study_rows
from vizier_omnipred.serialization import (Featurizer, ModelInputs, StudyInfo, StudyInputs,
                                           union_featurizer)

__all__ = ['DEFAULT_RELEVANCE', 'DEFAULT_VIEWS', 'MIN_TRAINING_EXAMPLES', 'Example',
           'FineTuneConfig', 'FineTuneReport', 'OmniPredRegressor', 'Prediction', 'YScaler',
           'default_device', 'episode']
# Views of a study a prediction reads (`slot_permutations`: each binds the parameters to the
# slot codes in another order; the encoder averages a query's state over them). Exact medians
# of the weights of the shipped card's run 5 on the regression benchmark's held-out BBOB studies, study error at
# 10 / 30 / 100 points: 1 view 0.1215 / 0.0917 / 0.0701, 2 views 0.1195 / 0.0897 / 0.0691,
# 4 views 0.1188 / 0.0853 / 0.0657, 8 views 0.1190 / 0.0863 / 0.0653 (tuning studies at 30:
# 0.108, 0.105, 0.103, 0.095; GP prior within 0.002). Averaging the views' quantiles instead
# (decoding every view) did no better (4 views: 0.1192 / 0.0863 / 0.0666) at twice the cost.
# A fine-tuned model reads view 0 only, the order its LoRA steps were trained in: LoRA trained
# on random orders and read in 4 views lost to it (tuning studies 0.187 / 0.089 / 0.041 vs
# 0.171 / 0.079 / 0.036 at 10 / 30 / 100 points; BBOB level, 0.133 / 0.085 / 0.057 vs 0.137 /
# 0.085 / 0.057).
DEFAULT_VIEWS = 4
# The parameters a prediction reads: those the model's own held-out likelihood keeps (see
# `relevance`). Measured on the shipped weights (zero-shot, 4 views; `python
# benchmarks/regression.py`, its 'every parameter' rows), study error at 10 / 30 / 100 points,
# every parameter -> selected: held-out BBOB 0.118 / 0.081 /
# 0.063 -> 0.103 / 0.066 / 0.051; GP prior 0.174 / 0.132 / 0.103 -> 0.170 / 0.129 / 0.100;
# tuning 0.184 / 0.090 / 0.052 -> 0.161 / 0.080 / 0.044; 2 parameters of 2-8 that matter
# 0.121 / 0.087 / 0.059 -> 0.084 / 0.050 / 0.034. Costs a forward pass per subset tried:
# 0.5 / 0.7 / 1.9 s per condition on one core, averaged over those studies.
DEFAULT_RELEVANCE = RelevanceConfig()
# A mixture of two readings (`RelevanceConfig(prior_studies='mixture'` or `'averaged'`): its
# quantiles come from the readings' quantiles at 2 * MIXTURE_GRID equally spaced levels in all,
# shared in proportion to the readings' weights (MIXTURE_GRID each for an equal mixture).
MIXTURE_GRID = 32


@attrs.frozen
class Prediction:
  """Per-row summaries of the sampled y. Arrays are [n] except quantiles [n, len(levels)]."""

  median: np.ndarray
  mean: np.ndarray
  quantile_levels: tuple[float, ...]
  quantiles: np.ndarray
  samples: np.ndarray  # [n, num_samples]


def _grid(num: int) -> np.ndarray:
  """`num` equally spaced quantile levels, the midpoints of equal bins of [0, 1]."""
  return (np.arange(num) + 0.5) / num


def default_device() -> str:
  """'cuda' when torch sees a GPU, else 'cpu': where a surrogate runs unless told."""
  return 'cuda' if torch.cuda.is_available() else 'cpu'


class OmniPredRegressor:
  """A pretrained OmniPred-style LM, fine-tuned per study and sampled for predictions."""

  def __init__(self, model: OmniPredModel, *, card: dict | None = None,
               views: int = DEFAULT_VIEWS,
               relevance: RelevanceConfig | None = DEFAULT_RELEVANCE):
    if views < 1:
      raise ValueError(f'views must be >= 1, got {views}.')
    self.base = model.eval()
    self.card = card or {}
    # Predictions average this many views of the study (`model.slot_permutations`); fewer when
    # the study has fewer parameter orders. Only models with slot binding have views.
    self.views = views if model.model_config.slot_binding else 1
    # None: the model reads every parameter. Else `condition` drops the parameters whose
    # absence raises the model's held-out likelihood of the trials (`relevance`).
    self.relevance = relevance
    self.selection: Selection | None = None  # what `condition` chose, with relevance on
    self._slot_table: torch.Tensor | None = None  # [V, MAX_SLOTS], set by condition()
    self.tuning = FineTuner(self.base)  # the fine-tuned copy, once `fine_tune` ran
    self.featurizer: Featurizer | None = None
    self._study_featurizer: Featurizer | None = None  # see set_study
    self.y_scaler: YScaler | None = None
    self._problem: vz.ProblemStatement | None = None
    self._context: ModelInputs | None = None  # the study's trials [n, P]
    self._context_y: np.ndarray | None = None  # their y, in the study's units
    # Prior studies read beside the context (`condition(prior_studies=...)`): their trials
    # [m, P] and each study's y normalised by its own values.
    self._prior: ModelInputs | None = None
    self._prior_y: list[np.ndarray] = []
    self._prior_raw_y: list[np.ndarray] = []  # each prior study's y as given
    self._prior_shares: list[bool] = []  # each prior study holds one of the study's parameters
    # How the model reads each prior study given (`relevance`'s `prior_studies`), chosen with
    # the parameter selection.
    self.prior_choice: PriorChoice | None = None
    # A second reading mixed into the predictions (a regressor on the same base):
    # relevance.prior_studies='mixture', the prior studies pooled (`_pooled` says which), an
    # equal mixture; 'averaged', the study alone, weighted by `averaged_weight`.
    self._second_reading: OmniPredRegressor | None = None
    self._pooled: list[int] = []
    # With relevance.prior_studies='averaged': the weight of the reading with the prior
    # studies (`relevance.averaged_weight`); None otherwise.
    self.averaged_weight: float | None = None

  # --- construction -------------------------------------------------------------------
  @classmethod
  def from_pretrained(cls, path: str | os.PathLike | None = None, *,
                      device: str | torch.device | None = None,
                      views: int = DEFAULT_VIEWS,
                      relevance: RelevanceConfig | None = DEFAULT_RELEVANCE
                      ) -> 'OmniPredRegressor':
    """Loads a checkpoint; with no path, the one shipped inside the package."""
    model, card = checkpoints.load(path, device=device)
    return cls(model, card=card, views=views, relevance=relevance)

  @classmethod
  def from_scratch(cls, config: ModelConfig = ModelConfig(), *, seed: int = 0,
                   device: str | torch.device | None = None, views: int = DEFAULT_VIEWS,
                   relevance: RelevanceConfig | None = None) -> 'OmniPredRegressor':
    """An untrained model (random weights from `seed`): the single-task baseline. Reads
    every parameter unless told (`relevance`: an untrained model's likelihood ranks nothing)."""
    with torch.random.fork_rng(devices=[]):
      torch.manual_seed(seed)
      model = OmniPredModel(config)
    if device is not None:
      model.to(device)
    return cls(model, card={'name': 'from-scratch', 'seed': seed}, views=views,
               relevance=relevance)

  def for_new_study(self, *, views: int | None = None,
                    relevance: RelevanceConfig | None | str = 'same') -> 'OmniPredRegressor':
    """A regressor on the same (shared, read-only) base weights with no study bound: how a
    server or a benchmark serves many studies from one loaded checkpoint. `views`,
    `relevance`: its own (None views / 'same' relevance: this one's)."""
    return OmniPredRegressor(self.base, card=self.card,
                             views=self.views if views is None else views,
                             relevance=self.relevance if relevance == 'same' else relevance)

  @property
  def model(self) -> OmniPredModel:
    """The module that predicts now: the fine-tuned one if any, else the base."""
    return self.tuning.model

  # --- data -----------------------------------------------------------------------------
  def set_study(self, problem: vz.ProblemStatement | None = None, *,
                study: StudyInfo | None = None, metric_inputs: Sequence[str] = (),
                partial_rows: bool = False) -> None:
    """Binds the regressor to a study's search space and metadata (validation, prompt), and
    names the other metrics its rows may carry as inputs (`Featurizer`'s `metric_inputs`);
    `partial_rows`: a row may hold any subset of the parameters (`Featurizer`).

    Also imports peft (and transformers behind it, ~5 s once per process) now, so that the
    first `fine_tune`, and a designer's first time budget, are not charged with it.
    """
    self.featurizer = Featurizer(problem, study=study, config=self.base.model_config.featurizer,
                                 metric_inputs=metric_inputs, partial_rows=partial_rows)
    # The study's own; `featurizer` widens to prior studies' parameters for a condition that
    # reads them, and comes back to this one for a condition that does not.
    self._study_featurizer = self.featurizer
    self.selection = None  # chosen among this featurizer's columns
    self._second_reading = None  # a mixture's second reading is bound to the same study
    import_peft()
    self._problem = problem

  def _rows_and_y(self, examples: Sequence[Example], *, what: str = 'Example'
                  ) -> tuple[list[dict], np.ndarray]:
    metric = self.featurizer.study.metric_name if self._problem is not None else None
    return rows_and_y(examples, metric, what=what)

  # --- context and fitting ----------------------------------------------------------------
  def condition(self, examples: Sequence[Example], *,
                problem: vz.ProblemStatement | None = None,
                prior_studies: Sequence[Sequence[Example]] = ()) -> None:
    """Makes `examples` the study's context: every later prediction reads them. Zero-shot.

    Trials need a final measurement of the study metric; at least 2 examples (the model
    normalises y by the context's range). With `relevance` set (the default) it also chooses
    the parameters the model reads, and `selection` says which.

    `prior_studies`: the trials of other, perhaps related, studies (each a sequence of
    examples, at least 2) that every prediction also reads, with a model trained to
    (`ModelConfig.prior_studies`). Parameters are matched by name: a prior study may lack
    some of this study's parameters or have others; each study's y is normalised by its own
    values, so their units need not agree. With `relevance.prior_studies` 'chosen' or 'pooled'
    each is read as a prior study, left out, or pooled into the study's own trials, as its
    held-out likelihood says; `prior_choice`, `prior_trials` and `pooled_trials` say how. With
    'mixture' the predictions are an equal mixture of two readings: every prior study as a
    prior study, and those that hold all of this study's parameters pooled into its trials.
    With 'averaged' a mixture of every prior study as a prior study and of the study alone,
    weighted as their held-out likelihoods of the study's trials say (`averaged_weight`).
    """
    self._condition(examples, problem, prior_studies, mixture=True)

  def _condition(self, examples, problem, prior_studies, *, mixture: bool) -> None:
    """`condition`; `mixture=False`: one reading whatever `relevance.prior_studies` says."""
    if problem is not None:
      self.set_study(problem)
    elif self.featurizer is None:
      self.set_study(None)
    rows, y = self._rows_and_y(examples)
    if len(rows) < 2:
      raise ValueError(f'The context needs at least 2 examples, got {len(rows)}.')
    priors = [self._rows_and_y(study, what=f'Prior study {k}, example')
              for k, study in enumerate(prior_studies)]
    featurizer = self._study_featurizer
    if priors:
      self._check_priors(priors)
      featurizer = union_featurizer(featurizer, self._problem,
                                    rows + [r for p, _ in priors for r in p])
    new_columns = featurizer is not self.featurizer
    self.featurizer = featurizer
    self._context = self.featurizer.featurize(rows)
    self._context_y = y
    self.y_scaler = YScaler.fit(y)
    self._prior = (self.featurizer.featurize([r for p, _ in priors for r in p])
                   if priors else None)
    sizes = self._prior_sizes
    self._prior_y = [normalised(v) for _, v in priors]
    self._prior_raw_y = [v for _, v in priors]
    names = {n for r in rows for n in r}  # a prior study sharing none of them: no say below
    self._prior_shares = [bool(names & {n for r in p for n in r}) for p, _ in priors]
    self.prior_choice = self.prior_choice if priors else None
    if self.relevance is None:
      self.selection = self.prior_choice = None
    else:
      reselect = new_columns or not still_current(self.selection, len(rows), self.relevance)
      if reselect:
        self.selection = self._select_parameters()
      self._context = self._context.columns(self.selection.kept)
      if self._prior is not None:
        self._prior = self._prior.columns(self.selection.kept)
        if self.relevance.prior_studies in ('chosen', 'pooled'):
          if reselect or self.prior_choice is None or sizes != self._prior_sizes:
            self.prior_choice = self._select_prior_studies()
          self._read_prior_studies(self.prior_choice)
    self._slot_table = slot_permutations(self.views, self._context.names.shape[1])
    self.averaged_weight = None
    if (mixture and priors and self.relevance is not None
        and self.relevance.prior_studies == 'averaged'):
      self._condition_alone_reading(examples)
    elif mixture:
      self._condition_pooled_reading(examples, rows, y, prior_studies, priors)
    else:
      self._second_reading = None

  def _second(self, relevance: RelevanceConfig) -> 'OmniPredRegressor':
    """The second reading's regressor, kept across conditions while the reading goes on (its
    selection refreshes as `relevance.refresh_growth` says)."""
    if self._second_reading is None or self._second_reading.relevance != relevance:
      self._second_reading = self.for_new_study(relevance=relevance)
      self._second_reading.featurizer = self._study_featurizer
      self._second_reading._study_featurizer = self._study_featurizer
      self._second_reading._problem = self._problem
    return self._second_reading

  def _condition_alone_reading(self, examples) -> None:
    """With `relevance.prior_studies='averaged'`: the second reading is the study alone, and
    the first reading's weight its posterior against it (`averaged_weight`)."""
    self.averaged_weight = averaged_weight(self._prior_score(),
                                           range(self._context.names.shape[1]))
    alone = self._second(attrs.evolve(self.relevance, prior_studies='all'))
    alone.condition(examples)
    self._second_reading, self._pooled = alone, []

  def _condition_pooled_reading(self, examples, rows, y, prior_studies, priors) -> None:
    """With `relevance.prior_studies='mixture'`: the second reading, on the same base, whose
    context is the study's trials with every prior study that holds all their parameters
    pooled into them (y by rank onto the study's range); the other prior studies stay prior
    studies there. None when no prior study holds them all, before `relevance.pooled_from`
    or from `relevance.pooled_until` study trials on."""
    names = {n for r in rows for n in r}  # the parameters the study's trials hold
    poolable = [k for k, (prior_rows, _) in enumerate(priors)
                if names <= {n for r in prior_rows for n in r}]
    config = self.relevance
    if (config is None or config.prior_studies != 'mixture' or not poolable
        or (config.pooled_until is not None and len(rows) >= config.pooled_until)
        or (config.pooled_from is not None and len(rows) < config.pooled_from)):
      self._second_reading = None
      return
    pooled = self._second(attrs.evolve(config, prior_studies='all'))
    pooled_y = pooled_values([priors[k][1] for k in poolable], y)
    pooled_rows = [r for k in poolable for r in priors[k][0]]
    pooled.condition(
        list(zip(pooled_rows, pooled_y)) + list(examples),
        prior_studies=[p for k, p in enumerate(prior_studies) if k not in poolable])
    self._second_reading, self._pooled = pooled, poolable

  def _check_priors(self, priors: list[tuple[list[dict], np.ndarray]]) -> None:
    if not self.base.model_config.prior_studies:
      raise ValueError(f'Checkpoint {self.card.get("name", "?")!r} was not trained to read '
                       'prior studies (ModelConfig.prior_studies); load one that was, or '
                       'condition without prior_studies.')
    if len(priors) > MAX_PRIOR_STUDIES:
      raise ValueError(f'At most {MAX_PRIOR_STUDIES} prior studies, got {len(priors)}.')
    for k, (rows, _) in enumerate(priors):
      if len(rows) < 2:
        raise ValueError(f'Prior study {k} needs at least 2 examples (its y is normalised by '
                         f'its own values), got {len(rows)}.')

  def _select_parameters(self) -> Selection:
    """The study's parameters worth reading (`relevance`), by the base model's held-out
    likelihood of the study's trials (and, with `relevance.parameters_with_priors`, of the
    own trials of the prior studies that share a parameter with it); metric inputs are always
    read."""
    p = self._context.names.shape[1]
    k = len(self.featurizer.metric_inputs)
    views, meta = self.relevance.views or self.views, self.featurizer.metadata()
    score = HeldOutLikelihood(self.base, self._context, meta, self._context_y, views=views,
                              config=self.relevance)
    sharing = [(rows, y) for rows, y, shares in zip(
        study_rows(self._prior_sizes), self._prior_raw_y, self._prior_shares) if shares]
    if self.relevance.parameters_with_priors and sharing:  # none without prior studies
      score = PooledLikelihood([score] + [
          HeldOutLikelihood(self.base, self._prior.select(rows), meta, y, views=views,
                            config=self.relevance) for rows, y in sharing])
    return select_parameters(score, range(p - k), range(p - k, p), config=self.relevance)

  def _select_prior_studies(self) -> PriorChoice:
    """How to read each prior study (`relevance.prior_studies`), by the base model's held-out
    likelihood of the study's trials."""
    return select_prior_studies(self._prior_score(), range(self._context.names.shape[1]),
                                config=self.relevance)

  def _prior_score(self) -> HeldOutLikelihood:
    """The base model's held-out likelihood of the study's trials, reading the prior studies
    or not (`relevance`'s folds and views)."""
    return HeldOutLikelihood(self.base, self._context, self.featurizer.metadata(),
                             self._context_y, views=self.relevance.views or self.views,
                             config=self.relevance, prior=self._prior,
                             prior_y=self._prior_raw_y)

  def _read_prior_studies(self, choice: PriorChoice) -> None:
    """The prior studies `choice` keeps stay in the context as prior studies; those it pools
    join the study's own trials (y by rank onto their range); the rest are left out."""
    if choice.kept == tuple(range(len(self._prior_y))):
      return
    each = study_rows(self._prior_sizes)

    def rows(studies):
      return np.concatenate([each[k] for k in studies])

    if choice.pooled:
      y = pooled_values([self._prior_raw_y[k] for k in choice.pooled], self._context_y)
      self._context = ModelInputs.concatenate([self._prior.select(rows(choice.pooled)),
                                               self._context])
      self._context_y = np.concatenate([y, self._context_y])
    self._prior = self._prior.select(rows(choice.kept)) if choice.kept else None
    self._prior_y = [self._prior_y[k] for k in choice.kept]

  @property
  def parameters_read(self) -> list[str] | None:
    """The parameters the model reads after `condition` chose them (`relevance`), in the
    study's order; None when it reads every one (relevance off, or no study yet)."""
    names = self.featurizer.parameter_names if self.featurizer is not None else None
    if self.selection is None or names is None:
      return None
    return [names[j] for j in self.selection.kept if j < len(names)]

  @property
  def num_context(self) -> int:
    return 0 if self._context is None else len(self._context)

  def fine_tune(
      self,
      examples: Sequence[Example],
      *,
      problem: vz.ProblemStatement | None = None,
      config: FineTuneConfig = FineTuneConfig(),
      warm_start: bool = False,
      prior_studies: Sequence[Sequence[Example]] = (),
  ) -> FineTuneReport:
    """`condition(examples)`, then `config.max_steps` steps of test-time training on random
    context/query splits of them.

    `warm_start=True` continues from the previous fine-tuning of the same method (the
    designer's path: a few steps per new trial instead of a fit from the base).
    `prior_studies`: read in context as in `condition`; the training episodes are the
    study's own trials. The fine-tuned model reads them as prior studies only (no 'mixture').
    """
    start = time.perf_counter()
    self._condition(examples, problem, prior_studies, mixture=False)
    if config.max_steps > 0 and self.num_context < MIN_TRAINING_EXAMPLES:
      raise ValueError(
          f'Test-time training needs at least {MIN_TRAINING_EXAMPLES} examples (a context of 2'
          f' and a query), got {self.num_context}; use condition() or max_steps=0.')
    if config.max_steps == 0:
      if not warm_start:
        self.tuning.reset()
      return FineTuneReport(steps=0, train_loss=math.nan, stopped_by='zero_shot',
                            seconds=time.perf_counter() - start, num_context=self.num_context)
    with torch.random.fork_rng(devices=[]):
      torch.manual_seed(config.seed)
      self.tuning.start(config, warm_start)
      return self.tuning.train(config, self.num_context, self._episode,
                               np.random.default_rng(config.seed), start)

  def _episode(self, order: np.ndarray, num_context: int) -> tuple[StudyInputs, np.ndarray]:
    """The context trials order[:num_context] predicting order[num_context:] (slot ids)."""
    return episode(self._context.select(order), self.featurizer.metadata(),
                   self._context_y[order], num_context, self.base.model_config.y_codec)

  # --- prediction -----------------------------------------------------------------------
  @property
  def _views_table(self) -> torch.Tensor:
    """The slot tables predictions read: all views, or after fine-tuning only the one the
    adapter was trained in (view 0, the names' own order)."""
    if self._slot_table is None:
      raise ValueError('No context: call condition() first.')
    return self._slot_table if self.tuning.tuned is None else self._slot_table[:1]

  @property
  def num_views(self) -> int:
    """Views a prediction averages for the bound study: `views`, fewer where the study has
    fewer parameter orders, 1 once fine-tuned (see DEFAULT_VIEWS)."""
    return len(self._views_table)

  def _query_inputs(self, queries: ModelInputs) -> StudyInputs:
    """The prior studies' trials (if any), the context, then `queries` (featurised rows)."""
    context_z = self.y_scaler.transform(self._context_y)
    if self._prior is None:
      items = ModelInputs.concatenate([self._context, queries])
      return StudyInputs.build(items, self.featurizer.metadata(), context_z, self.num_context)
    items = ModelInputs.concatenate([self._prior, self._context, queries])
    study = np.concatenate([np.full(len(v), k + 1) for k, v in enumerate(self._prior_y)]
                           + [np.zeros(self.num_context + len(queries))])
    return StudyInputs.build(items, self.featurizer.metadata(),
                             np.concatenate(self._prior_y + [context_z]),
                             len(self._prior) + self.num_context, study=study)

  @property
  def _prior_sizes(self) -> list[int]:
    """Trials of each prior study given to the last `condition`."""
    return [len(v) for v in self._prior_raw_y]

  @property
  def prior_trials(self) -> list[int]:
    """How many trials of each prior study given the predictions read as a prior study's (0:
    one left out or pooled by `relevance.prior_studies`)."""
    kept = (range(len(self._prior_sizes)) if self.prior_choice is None
            else self.prior_choice.kept)
    return [n if k in kept else 0 for k, n in enumerate(self._prior_sizes)]

  @property
  def pooled_trials(self) -> list[int]:
    """How many trials of each prior study given the predictions read as the study's own
    (`relevance.prior_studies` 'pooled', or 'mixture' in its second reading); empty when none
    is."""
    pooled = () if self.prior_choice is None else self.prior_choice.pooled
    if self._second_reading is not None and self._pooled:
      pooled = self._pooled
    return [n if k in pooled else 0 for k, n in enumerate(self._prior_sizes)] if pooled else []

  def _featurize_queries(self, rows: Sequence[Any]) -> ModelInputs:
    if self._context is None:
      raise ValueError('No context: call condition() or fine_tune() with the study\'s trials'
                       ' before sampling (the model predicts from them).')
    inputs = self.featurizer.featurize(rows)
    return inputs if self.selection is None else inputs.columns(self.selection.kept)

  def _decode(self, queries: ModelInputs, width: int, decode, batch_size: int) -> np.ndarray:
    """Featurised rows, `batch_size` at a time after the whole context (read in the study's
    views), through decode(model, inputs) -> ids [b, width, T] -> [n, width] y in the study's
    units."""
    codec = self.base.model_config.y_codec
    out = np.empty((len(queries), width), dtype=np.float64)
    with self.tuning.merged(), torch.inference_mode():
      model = self.model
      for lo in range(0, len(queries), batch_size):
        part = model.to_tensors(self._query_inputs(queries.select(slice(lo, lo + batch_size))))
        if self.num_views > 1:
          part['slot_views'] = self._views_table
        ids = decode(model, part)
        out[lo:lo + len(ids)] = codec.decode_many(ids.cpu().numpy())
    return self.y_scaler.inverse(out)  # increasing: quantiles map to quantiles

  def _sample_featurized(self, queries: ModelInputs, num_samples: int, temperature: float,
                         seed: int | None, batch_size: int) -> np.ndarray:
    """Featurised rows -> [n, num_samples] y samples in the study's units."""
    gen = torch.Generator(device=self.model.device)
    if seed is None:
      gen.seed()
    else:
      gen.manual_seed(seed)
    return self._decode(queries, num_samples, lambda model, part: sample_ids(
        model, part, num_samples, temperature=temperature, generator=gen), batch_size)

  def quantiles(self, rows: Sequence[Any], levels: Sequence[float] = (0.1, 0.5, 0.9), *,
                temperature: float = 1.0, batch_size: int = 512) -> np.ndarray:
    """-> [n, len(levels)] exact quantiles of each row's predictive distribution, in the
    study's units (decoded down the token tree, no sampling: see `decoding.quantile_ids`).
    A mixture of two readings (`relevance.prior_studies` 'mixture' or 'averaged'): the
    quantiles of both readings' quantiles at equally spaced levels, 2 * MIXTURE_GRID in all,
    each reading's share of them its weight's."""
    own = self._split(2 * MIXTURE_GRID)
    if own == 2 * MIXTURE_GRID:
      return self._own_quantiles(rows, levels, temperature, batch_size)
    if not own:
      return self._second_reading.quantiles(rows, levels, temperature=temperature,
                                            batch_size=batch_size)
    both = np.concatenate([
        self._own_quantiles(rows, _grid(own), temperature, batch_size),
        self._second_reading.quantiles(rows, _grid(2 * MIXTURE_GRID - own),
                                       temperature=temperature, batch_size=batch_size)], axis=1)
    return np.quantile(both, np.asarray(levels, dtype=np.float64), axis=1).T

  def _split(self, num: int) -> int:
    """Of `num` draws or levels, how many the first reading takes (its weight's share,
    rounded half up: the first of an odd number when equal); all without a second reading."""
    if self._second_reading is None:
      return num
    weight = 0.5 if self.averaged_weight is None else self.averaged_weight
    return int(np.floor(weight * num + 0.5))

  def _own_quantiles(self, rows, levels, temperature, batch_size) -> np.ndarray:
    levels = torch.as_tensor(np.asarray(levels, dtype=np.float64))
    return self._decode(self._featurize_queries(rows), len(levels), lambda model, part: quantile_ids(
        model, part, levels, temperature=temperature), batch_size)

  def sample(self, rows: Sequence[Any], num_samples: int = 64, *, temperature: float = 1.0,
             seed: int | None = 0, batch_size: int = 512) -> np.ndarray:
    """-> [n, num_samples] float64 y samples in the study's units, given the context.

    Rows are predicted `batch_size` at a time, each batch after the whole context; a row's
    samples do not depend on which other rows it shares a batch with (only the random stream
    does: fix `seed` for reproducible draws). A mixture of two readings
    (`relevance.prior_studies` 'mixture' or 'averaged'): the first columns, the first
    reading's weight's share of them (ceil(num_samples / 2) for 'mixture'), from the prior
    studies read as prior studies, the rest from the second reading (them pooled, or the study
    alone).
    """
    own = self._split(num_samples)
    if own == num_samples:
      return self._sample_featurized(self._featurize_queries(rows), own, temperature, seed,
                                     batch_size)
    rest = self._second_reading.sample(rows, num_samples - own, temperature=temperature,
                                       seed=None if seed is None else seed + 1,
                                       batch_size=batch_size)
    if not own:
      return rest
    return np.concatenate([self._sample_featurized(self._featurize_queries(rows), own,
                                                   temperature, seed, batch_size), rest], axis=1)

  def sample_given(self, rows: Sequence[Any], given: np.ndarray, *, temperature: float = 1.0,
                   seed: int | None = 0, batch_size: int = 512) -> np.ndarray:
    """One y sample per (row, s) given that row's values of the study's metric inputs
    (`set_study(metric_inputs=...)`): given [n, S, k] -> [n, S]. The chain rule's step: with
    `given` drawn from the earlier objectives' samples, (given, result) are joint samples."""
    k = len(self.featurizer.metric_inputs) if self.featurizer is not None else 0
    given = np.asarray(given, dtype=np.float64)
    if given.ndim != 3 or given.shape[0] != len(rows) or given.shape[2] != k:
      raise ValueError(f'given must be [n={len(rows)}, S, k={k}] (k = the metric inputs of'
                       f' set_study), got shape {given.shape}.')
    n, s = given.shape[:2]
    queries = self._featurize_queries(rows).select(np.repeat(np.arange(n), s))
    queries = self.featurizer.with_metric_values(queries, given.reshape(n * s, k))
    return self._sample_featurized(queries, 1, temperature, seed, batch_size).reshape(n, s)

  def predict(self, rows: Sequence[Any], num_samples: int = 64, *,
              quantiles: Sequence[float] = (0.1, 0.5, 0.9), temperature: float = 1.0,
              seed: int | None = 0) -> Prediction:
    """Median (OmniPred's point prediction) and quantiles, exact (`quantiles`); mean and
    samples from `num_samples` draws."""
    samples = self.sample(rows, num_samples, temperature=temperature, seed=seed)
    levels = tuple(float(q) for q in quantiles)
    grid = sorted(set(levels) | {0.5})  # each level decoded once, the median among them
    column = dict(zip(grid, self.quantiles(rows, grid, temperature=temperature).T))
    return Prediction(
        median=column[0.5], mean=samples.mean(axis=1), quantile_levels=levels,
        quantiles=(np.stack([column[q] for q in levels], axis=1) if levels
                   else np.empty((len(samples), 0))),
        samples=samples,
    )

  # --- adapters -------------------------------------------------------------------------
  def save_adapter(self, path: str | os.PathLike) -> None:
    """Saves the LoRA weights. With the same context (`condition`) on the same base, a loaded
    adapter restores the predictions exactly."""
    self.tuning.save_adapter(path)

  def load_adapter(self, path: str | os.PathLike) -> None:
    self.tuning.load_adapter(path)
