"""Which parameters a study's y depends on, chosen by the model's own held-out likelihood.

The in-context model reads every parameter of a trial pooled into one token, and in
pretraining it did not learn to find, from 30 trials, the one parameter of four that y
depends on (y = sin(2 x0) among 4 uniform parameters: study error 0.26, the training median's
0.28; reading x0 alone 0.006). A GP finds it by maximising its marginal likelihood over ARD
lengthscales. This is the same move with the LM as the model: a parameter subset is scored by
the log-likelihood the model gives each trial's y when the other folds' trials are its
context (K-fold cross-validation, teacher-forced: one forward pass per subset, no decoding),
and backward elimination drops, one at a time, the parameter whose removal raises that
likelihood most, while the gain is at least `min_gain`.

Prior studies (other studies read beside this one) can be chosen the same way
(`prior_studies`): the same folds, each prior study read as a prior study, left out, or pooled
into the fold's context as if its trials were the study's own (its y mapped by rank onto the
range of the context's y: the quantile transform of Salinas et al. 2020, which makes studies of
one model on other datasets comparable), one study's way changed at a time while the
likelihood rises.

The model is unchanged; only the columns it reads are. A dropped parameter is absent from the
context and from every query (as an inactive conditional parameter is), so the kept ones also
bind to the low slot codes, where the model regresses best.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from scipy.stats import rankdata

from vizier_omnipred.episodes import episode
from vizier_omnipred.model import PRIORS_ONLY, OmniPredModel, slot_permutations
from vizier_omnipred.serialization import ModelInputs, StudyInputs


PRIOR_READINGS = ('all', 'chosen', 'pooled', 'mixture', 'averaged')
# The ways one prior study can be read (`PriorChoice.modes`).
LEFT_OUT, CONTEXT, POOLED = 'left_out', 'context', 'pooled'


@attrs.frozen
class RelevanceConfig:
  """Backward elimination of parameters by cross-validated in-context likelihood."""

  # Folds of the study's trials; each trial is a query once, with the other folds as context.
  folds: int = attrs.field(default=5, kw_only=True)
  # Nats per trial the held-out log-likelihood must rise by for a parameter to be dropped.
  min_gain: float = attrs.field(default=0.0, kw_only=True)
  # Fewer trials than this: every parameter is kept (too few to tell them apart).
  min_trials: int = attrs.field(default=6, kw_only=True)
  # Parameters always kept at least this many (of those that can be dropped).
  min_kept: int = attrs.field(default=1, kw_only=True)
  # A regressor conditioned again on a grown context (a designer's study, one trial more each
  # time) keeps its last selection until the context has grown by this share; 0: it selects
  # on every `condition`.
  refresh_growth: float = attrs.field(default=0.0, kw_only=True)
  # Views of the study the held-out likelihood reads (None: as many as the predictions).
  views: int | None = attrs.field(default=None, kw_only=True)
  seed: int = attrs.field(default=0, kw_only=True)
  # Subsets scored per choice at most, for up to `max_scores_dims` parameters; with d more,
  # max_scores * max_scores_dims / d (a subset's score costs about d): the choice's cost is
  # bounded whatever d. Full backward elimination scores up to d(d+1)/2 + 1 subsets (37 at 8
  # parameters, 56 at 10: within the bound, chosen exactly as without it); beyond, the first
  # round scores single drops and then drops at once every parameter whose removal helped,
  # and elimination goes on one at a time while the bound allows (`Selection.cut`). A
  # 60-parameter study took 1165 scores, 49-76 s per choice, without a bound.
  max_scores: int = attrs.field(default=64, kw_only=True)
  max_scores_dims: int = attrs.field(default=10, kw_only=True)
  # How prior studies given with the context are read: 'all' each as a prior study;
  # 'chosen' each as a prior study or not at all, 'pooled' also pooled into the study's own
  # trials, by the held-out likelihood of the study's trials (`select_prior_studies`), from
  # `prior_min_trials` trials on; 'mixture' both ways at once, the predictions an equal
  # mixture of every prior study read as a prior study and of those that hold all the
  # study's parameters pooled (`OmniPredRegressor.condition`); 'averaged' a mixture of the
  # prior studies read as prior studies and of the study read alone, weighted by each
  # reading's held-out likelihood of the study's trials (`averaged_weight`).
  prior_studies: str = attrs.field(default='all', kw_only=True, metadata=PRIORS_ONLY,
                                   validator=attrs.validators.in_(PRIOR_READINGS))
  prior_min_trials: int = attrs.field(default=6, kw_only=True, metadata=PRIORS_ONLY)
  # With 'mixture': from this many study trials on, the pooled reading is dropped and the
  # prior studies are read as prior studies only ('all'); None: the mixture throughout. Off
  # by measurement (docs/design.md, `omnipred_priors_pooled10` in `benchmarks.transfer`): from
  # 10 trials on, over ten seeds, as many related studies below no priors at 20 trials as the
  # default's acquisition gives, at a higher mean.
  pooled_until: int | None = attrs.field(default=None, kw_only=True, metadata=PRIORS_ONLY)
  # With 'mixture': before this many study trials the pooled reading is left out (its y map
  # onto the range of the study's own trials, which a few seeds from the prior studies' best
  # points do not span); None: from the first trial. Off by measurement (docs/design.md,
  # `omnipred_priors_quick_pooled5` in `benchmarks.transfer`, `transfer_early.md`): with the
  # model from the 4th trial, level with the default on 16 related studies.
  pooled_from: int | None = attrs.field(default=None, kw_only=True, metadata=PRIORS_ONLY)
  # With prior studies given: the parameter choice scores a subset by the held-out likelihood
  # of the study's trials and of the own trials of each prior study that shares a parameter
  # with it, together (`PooledLikelihood`: each study predicted from its own other folds,
  # every trial weighing alike), so that a parameter the prior studies show to matter is not
  # dropped on the evidence of the study's first few trials alone (an SVM's kernel at 6
  # trials: dropping it changed the study's held-out NLL by 0.003 nats per trial); None or
  # False: the study's trials alone choose. Off by measurement (docs/design.md,
  # `benchmarks/results/transfer_relevance.md`): with related priors below the default on 62%
  # of 16 studies at 10 and 20 trials (seeds 0-2; 56% / 59% over five), but with misleading
  # priors of the same parameters (the Ellipsoidal control) higher on all four.
  parameters_with_priors: bool | None = attrs.field(default=None, kw_only=True,
                                                    metadata=PRIORS_ONLY)

  def __attrs_post_init__(self):
    if self.folds < 2:
      raise ValueError(f'RelevanceConfig.folds must be >= 2, got {self.folds}.')
    if self.views is not None and self.views < 1:
      raise ValueError(f'RelevanceConfig.views must be >= 1 or None, got {self.views}.')
    if self.min_kept < 1:
      raise ValueError(f'RelevanceConfig.min_kept must be >= 1, got {self.min_kept}.')
    if self.max_scores < 2:
      raise ValueError(f'RelevanceConfig.max_scores must be >= 2, got {self.max_scores}.')
    for name in ('pooled_until', 'pooled_from'):
      value = getattr(self, name)
      if value is not None and value < 2:
        raise ValueError(f'RelevanceConfig.{name} must be >= 2 (a context holds at least 2'
                         f' trials) or None, got {value}.')


@attrs.frozen
class Selection:
  """kept: item columns the model reads (sorted); scores: held-out NLL per trial (nats) of
  each subset the search accepted, the full set first; num_trials: the trials it was chosen
  from."""

  kept: tuple[int, ...]
  dropped: tuple[int, ...]
  scores: tuple[float, ...]
  num_trials: int
  # The search stopped at `max_scores` (or dropped a batch at once) before it had finished.
  cut: bool = False


class HeldOutLikelihood:
  """Cross-validated NLL of a study's y under the model reading a subset of the columns
  (and of the prior studies, when given).

  The K folds (`folds`) are drawn once, so every subset is scored on the same episodes and
  targets; each is built by `episodes.episode`, as pretraining builds them. `__call__(keep,
  priors)` -> mean NLL per trial, in nats, of the y tokens: the discretised y's
  log-likelihood, whose bins are the same for every subset. `prior`: the prior studies' trials
  [m, P] (the context's columns), study after study, and `prior_y` each study's y (in the
  study's direction).
  """

  def __init__(self, model: OmniPredModel, context: ModelInputs, meta: ModelInputs,
               y: np.ndarray, *, views: int, config: RelevanceConfig,
               prior: ModelInputs | None = None, prior_y: Sequence[np.ndarray] = ()):
    self.model = model
    self.context = context
    self.meta = meta
    self.y = np.asarray(y, dtype=np.float64)
    self.views = views
    self.prior, self.prior_y = prior, [np.asarray(v, dtype=np.float64) for v in prior_y]
    self._prior_rows = study_rows([len(v) for v in self.prior_y])
    n = len(self.y)
    order = np.random.default_rng(config.seed).permutation(n)
    self.folds = [f for f in np.array_split(order, min(config.folds, n)) if len(f)]
    # Each fold's episode order: the other folds' trials (its context) first, then the fold.
    self._orders = [np.concatenate([np.setdiff1d(np.arange(n), f), f]) for f in self.folds]

  @property
  def num_priors(self) -> int:
    return len(self.prior_y)

  def _prior_items(self, keep: Sequence[int], studies: Sequence[int]) -> ModelInputs | None:
    if not len(studies):
      return None
    return self.prior.columns(keep).select(np.concatenate([self._prior_rows[k]
                                                           for k in studies]))

  def __call__(self, keep: Sequence[int], priors: Sequence[int] = (),
               pooled: Sequence[int] = ()) -> float:
    """`keep`: the columns read; `priors`: the prior studies read as such, `pooled`: those
    read as the study's own trials (indices)."""
    items = self.context.columns(keep)
    before, extra = self._prior_items(keep, priors), self._prior_items(keep, pooled)
    prior_y = [self.prior_y[k] for k in priors]
    parts, targets = [], []
    for fold, order in zip(self.folds, self._orders):
      n_context = len(order) - len(fold)
      fold_items, fold_y = items.select(order), self.y[order]
      if extra is not None:  # on the range of the fold's own context, as at prediction
        fold_y = np.concatenate([pooled_values([self.prior_y[k] for k in pooled],
                                               fold_y[:n_context]), fold_y])
        fold_items = ModelInputs.concatenate([extra, fold_items])
        n_context += len(extra)
      if before is not None:
        fold_items = ModelInputs.concatenate([before, fold_items])
      inputs, ids = episode(fold_items, self.meta, fold_y, n_context,
                            self.model.model_config.y_codec, prior_y=prior_y)
      parts.append(inputs)
      targets.append(ids)
    model = self.model
    with torch.inference_mode():
      tensors = model.to_tensors(StudyInputs.stack(parts))
      if self.views > 1 and model.model_config.slot_binding:
        tensors['slot_views'] = slot_permutations(self.views, items.names.shape[1])
      ids = torch.as_tensor(np.concatenate(targets), device=model.device)
      logits = model(tensors, ids)
      nll = F.cross_entropy(logits.flatten(0, 1).float(), (ids + model.slot_offsets).flatten(),
                            reduction='none')
    return float(nll.view(len(ids), -1).sum(1).mean())


class PooledLikelihood:
  """Several studies' held-out likelihoods as one score for `select_parameters`: the mean NLL
  per trial over all their trials, each study's trials predicted from its own other folds
  (the same columns read in each). `y` is the first study's (the one the choice is for: its
  size decides whether to choose at all)."""

  def __init__(self, scores: Sequence[HeldOutLikelihood]):
    self.scores = list(scores)
    self.y = self.scores[0].y
    self._sizes = np.asarray([len(s.y) for s in self.scores], dtype=np.float64)

  def __call__(self, keep: Sequence[int]) -> float:
    nll = np.asarray([s(keep) for s in self.scores])
    return float(nll @ self._sizes / self._sizes.sum())


def select_parameters(score: HeldOutLikelihood, candidates: Sequence[int],
                      always: Sequence[int] = (), *,
                      config: RelevanceConfig = RelevanceConfig()) -> Selection:
  """Backward elimination over `candidates` (columns that may be dropped; `always` are read
  in every subset): drop the candidate whose removal lowers `score` most, while it lowers it
  by at least `config.min_gain` and more than `config.min_kept` candidates remain. At most
  `config.max_scores` subsets are scored (see RelevanceConfig.max_scores)."""
  kept = sorted(candidates)
  always = sorted(always)
  if len(score.y) < config.min_trials or len(kept) <= config.min_kept:
    return Selection(kept=tuple(sorted(kept + always)), dropped=(), scores=(),
                     num_trials=len(score.y))
  d = len(kept)
  budget = [max(2, config.max_scores * config.max_scores_dims // max(d, config.max_scores_dims))]

  def scored(subset) -> float:
    budget[0] -= 1
    return score(sorted(list(subset) + always))

  best = scored(kept)
  scores, dropped = [best], []
  batch_first = d * (d + 1) // 2 + 1 > budget[0]
  cut = False
  while len(kept) > config.min_kept:
    trial = {}
    for j in kept:
      if budget[0] <= (1 if batch_first else 0):  # the batch's check keeps one score
        cut = True
        break
      trial[j] = scored([i for i in kept if i != j])
    if not trial:
      break
    j = min(trial, key=trial.get)
    if not trial[j] <= best - config.min_gain:
      break
    if batch_first:  # many parameters: every helpful drop at once, if the batch scores better
      batch_first = False
      helpful = sorted((i for i in trial if trial[i] <= best - config.min_gain), key=trial.get)
      helpful = helpful[:len(kept) - config.min_kept]
      if len(helpful) > 1 and budget[0] > 0:
        together = scored([i for i in kept if i not in helpful])
        if together < trial[j]:
          best = together
          kept = [i for i in kept if i not in helpful]
          dropped += helpful
          scores.append(best)
          cut = True
          continue
    best = trial[j]
    kept.remove(j)
    dropped.append(j)
    scores.append(best)
    if cut:
      break
  return Selection(kept=tuple(sorted(kept + always)), dropped=tuple(dropped),
                   scores=tuple(scores), num_trials=len(score.y), cut=cut)


def study_rows(sizes: Sequence[int]) -> list[np.ndarray]:
  """The row indices of each study in trials stacked study after study (`sizes` each)."""
  ends = np.cumsum(sizes, dtype=int)
  return [np.arange(end - n, end) for n, end in zip(sizes, ends)]


def pooled_values(prior_y: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
  """Prior studies' y (each in the study's direction), each mapped by its ranks onto the range
  of the study's own `y`: its worst trial to the study's lowest value, its best to the highest
  (ties share their mean rank)."""
  lo, hi = float(np.min(y)), float(np.max(y))
  parts = [(rankdata(v) - 1.0) / max(1, len(v) - 1) for v in prior_y]
  return lo + (hi - lo) * np.concatenate(parts) if parts else np.zeros(0)


@attrs.frozen
class PriorChoice:
  """modes: how each prior study given is read (CONTEXT, POOLED or LEFT_OUT); scores: the
  held-out NLL per trial (nats) of each choice accepted, every study as a prior study first;
  num_trials: the trials it was chosen from."""

  modes: tuple[str, ...]
  scores: tuple[float, ...]
  num_trials: int

  @property
  def kept(self) -> tuple[int, ...]:
    """The prior studies read as prior studies."""
    return tuple(k for k, m in enumerate(self.modes) if m == CONTEXT)

  @property
  def pooled(self) -> tuple[int, ...]:
    """The prior studies read as the study's own trials."""
    return tuple(k for k, m in enumerate(self.modes) if m == POOLED)


def select_prior_studies(score: HeldOutLikelihood, keep: Sequence[int], *,
                         config: RelevanceConfig = RelevanceConfig()) -> PriorChoice:
  """Every prior study `score` holds starts as a prior study (reading the columns `keep`);
  then, one study at a time, the change of one study's reading (left out; with
  `config.prior_studies='pooled'` also pooled) that lowers the held-out NLL most, while it
  lowers it by at least `config.min_gain`; each study changes once. With 'chosen' this is
  backward elimination, down to none. Fewer than `config.prior_min_trials` trials, or 'all':
  every study as a prior study, unscored."""
  modes = [CONTEXT] * score.num_priors
  if (config.prior_studies == 'all' or len(score.y) < config.prior_min_trials
      or not modes):
    return PriorChoice(modes=tuple(modes), scores=(), num_trials=len(score.y))
  ways = (LEFT_OUT, POOLED) if config.prior_studies == 'pooled' else (LEFT_OUT,)

  def scored(m: list[str]) -> float:
    return score(keep, [k for k, w in enumerate(m) if w == CONTEXT],
                 [k for k, w in enumerate(m) if w == POOLED])

  best = scored(modes)
  scores, changed = [best], set()
  while len(changed) < len(modes):
    trial = {}
    for k in range(len(modes)):
      if k not in changed:
        for way in ways:
          trial[(k, way)] = scored(modes[:k] + [way] + modes[k + 1:])
    (k, way) = min(trial, key=trial.get)
    if not trial[(k, way)] <= best - config.min_gain:
      break
    best, modes[k] = trial[(k, way)], way
    changed.add(k)
    scores.append(best)
  return PriorChoice(modes=tuple(modes), scores=tuple(scores), num_trials=len(score.y))


def averaged_weight(score: HeldOutLikelihood, keep: Sequence[int]) -> float:
  """Bayesian model averaging between two readings of a study given prior studies: every
  prior study read as a prior study (they inform this study) or none read (they do not), at
  even prior odds. -> the first reading's posterior weight, from each reading's held-out
  log-likelihood of the study's trials (`score`, reading the columns `keep`): the sigmoid of
  the log-likelihood ratio summed over the trials. Prior studies drawn from another function
  cost a model that reads them a little everywhere (the transfer weights before the prior-study
  gate: +0.004 to +0.010 nats per y token at 2-30 study trials,
  `benchmarks/results/prior_averaging_pregate.md`); averaged, that cost is gone and most of the
  related studies' gain stays."""
  if not score.num_priors:
    return 0.0
  gain = len(score.y) * (score(keep) - score(keep, range(score.num_priors)))
  return float(expit(gain))


def still_current(selection: Selection | None, num_trials: int, config: RelevanceConfig) -> bool:
  """Whether `selection` may be reused for a context of `num_trials` (see refresh_growth)."""
  return (selection is not None and config.refresh_growth > 0
          and selection.num_trials <= num_trials
          < selection.num_trials * (1 + config.refresh_growth))
