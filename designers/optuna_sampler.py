"""`OmniPredSampler`: the OmniPred designer as an Optuna sampler.

    study = optuna.create_study(sampler=OmniPredSampler(seed=0))
    study.optimize(objective, n_trials=40)

Relative sampling, Optuna's multivariate path: the parameters every finished trial shares
(Optuna's `IntersectionSearchSpace`) become a Vizier problem, the study's trials Vizier trials
(`optuna_space`), and `OmniPredDesigner` suggests, as it would in a Vizier study: objectives
in the study's directions (several: EHVI), constraints as SAFETY metrics, failed and pruned
trials as infeasible. RUNNING trials are passed as active trials, with the parameters this
sampler already chose for them (kept in the trial's system attributes, as Optuna's GPSampler
shares its own), so parallel workers are never handed one configuration twice.

Define-by-run parameters outside that space are the conditional case, and OmniPred reads a
trial as the set of parameters it has. With `define_by_run='model'`, a parameter that appears
exactly when a shared categorical takes some of its values (a model family's own parameters)
joins the relative space as that categorical's child (`optuna_space.conditional_space`), so
the designer searches the conditional space as a whole; any other is chosen by the model
among its values, by the upper quantile of y it predicts for the trial so far plus that
value, with every finished trial in context. 'random': Optuna's usual fallback, the shared
parameters by the designer and the rest at random.

Nothing is kept across processes: each rebuilds what it needs from the study's storage, so one
sampler works with `n_jobs`, several processes on one RDB storage, and the journal storage.
Within a process it keeps the loaded model, each study's designer (fed only the trials
finished since its last suggestion, as Vizier's server does; `reuse_designer`) and the last
conditioned define-by-run surrogate.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import zlib
from typing import Any, Callable, Sequence

import attrs
import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.samplers._base import _process_constraints_after_trial
from optuna.trial import FrozenTrial, TrialState
from vizier import algorithms as vza

from designers import acquisition
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.optuna_space import OptunaProblem, conditional_space
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from designers.surrogate import SurrogateFactory
from designers.warping import YWarp
from vizier_omnipred import StudyInfo

# The system attribute holding the parameters this sampler chose for a trial (JSON).
SHARED_PARAMS_KEY = 'omnipred:relative_params'
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@attrs.frozen
class OmniPredSamplerConfig:
  """The sampler's knobs (the designer's are `designer`)."""

  designer: OmniPredDesignerConfig = attrs.field(factory=OmniPredDesignerConfig, kw_only=True)
  # Parameters outside the relative search space: 'model' (chosen by the model's upper
  # quantile, see the module doc) or 'random' (Optuna's RandomSampler).
  define_by_run: str = attrs.field(default='model', kw_only=True,
                                   validator=attrs.validators.in_(('model', 'random')))
  # Values of a define-by-run parameter the model scores (a categorical: all its choices),
  # plus that parameter's values in the `num_best_values` best trials.
  num_value_candidates: int = attrs.field(default=64, kw_only=True)
  num_best_values: int = attrs.field(default=3, kw_only=True)
  # The model chooses a define-by-run parameter once this many finished trials have it.
  define_by_run_from: int = attrs.field(default=5, kw_only=True)
  # Suggestions computed per relative sample: when another worker took the first while this
  # one computed, the next goes out instead.
  alternatives: int = attrs.field(default=3, kw_only=True, validator=attrs.validators.ge(1))
  # Keep each study's designer in this process and feed it only the trials finished since
  # (as Vizier's server does): its trust region follows the study, and the parameters the
  # model reads are chosen again only as the study grows. False: a fresh designer per trial.
  # Either way nothing is kept across processes. See docs/design.md for the measurement.
  reuse_designer: bool = attrs.field(default=True, kw_only=True)
  max_cached_studies: int = attrs.field(default=8, kw_only=True)


class OmniPredSampler(optuna.samplers.BaseSampler):
  """An Optuna sampler whose suggestions come from `OmniPredDesigner` (see the module doc)."""

  def __init__(self, *, seed: int | None = None,
               config: OmniPredSamplerConfig = OmniPredSamplerConfig(),
               surrogate_factory: SurrogateFactory | None = None,
               constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None):
    """`surrogate_factory`: the designer's (None: the shipped LM, loaded once on first use).
    `constraints_func`: as Optuna's samplers take it (feasible at <= 0); constraints set
    with `Trial.set_constraint` are read without it."""
    self._seed = int(np.random.SeedSequence(seed).entropy % 2**31) if seed is None else seed
    self._config = config
    self._given_factory = surrogate_factory
    self._constraints_func = constraints_func
    self._intersection = optuna.search_space.IntersectionSearchSpace()
    self._init_process_state()

  def _init_process_state(self) -> None:
    self._lock = threading.Lock()
    self._designer_lock = threading.Lock()  # one suggestion at a time per process
    self._factory: SurrogateFactory | None = self._given_factory
    self._define_by_run_cache: tuple[tuple, Any] | None = None
    # (study, space) -> (its designer, the numbers of the finished trials it has read)
    self._designers: collections.OrderedDict[tuple, tuple[OmniPredDesigner, set[int]]] = (
        collections.OrderedDict())

  def __getstate__(self) -> dict:
    """Picklable (Ray ships searchers, process pools ship samplers): the loaded model and
    the lock stay behind and are rebuilt on first use."""
    state = dict(self.__dict__)
    for key in ('_lock', '_designer_lock', '_factory', '_define_by_run_cache', '_designers'):
      state.pop(key)
    return state

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._init_process_state()

  def _surrogates(self) -> SurrogateFactory:
    with self._lock:
      if self._factory is None:
        self._factory = LMSurrogate.factory(LMSurrogateConfig())
      return self._factory

  def _trial_seed(self, trial: FrozenTrial) -> int:
    return int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])

  def reseed_rng(self) -> None:
    self._seed = int(np.random.SeedSequence().entropy % 2**31)

  # --- relative sampling: the designer ----------------------------------------------------
  def _structure(self, study: optuna.Study) -> tuple[dict[str, BaseDistribution], dict]:
    """(relative space, parents): the parameters every finished trial shares, and with
    `define_by_run='model'` the define-by-run ones that fit under a shared categorical
    (`optuna_space.conditional_space`)."""
    shared = {n: d for n, d in self._intersection.calculate(study).items() if not d.single()}
    if self._config.define_by_run != 'model' or not shared:
      return shared, {}
    return conditional_space(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                             shared)

  def infer_relative_search_space(self, study: optuna.Study,
                                  trial: FrozenTrial) -> dict[str, BaseDistribution]:
    return self._structure(study)[0]

  def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                      search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
    if not search_space:
      return {}
    structure, parents = self._structure(study)
    if structure != search_space:  # the study grew since Optuna asked: keep to its space
      parents = {c: link for c, link in parents.items()
                 if c in search_space and link[0] in search_space}
    trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
    constraints = sorted({k for t in trials if t.state == TrialState.COMPLETE
                          for k in t.constraints})
    space = OptunaProblem.of(study, search_space, constraints, parents)
    finished = [t for t in trials if t.state in _FINISHED and space.fits(t)]
    active = []
    for t in trials:
      params = _taken_params(t)
      if t.state in (TrialState.RUNNING, TrialState.WAITING) and space.holds(params):
        active.append(space.active(params, t.number + 1))
    with self._designer_lock:
      designer, read = self._designer(study, space, trial)
      new = [t for t in finished if t.number not in read]
      designer.update(vza.CompletedTrials([space.completed(t, t.number + 1) for t in new]),
                      vza.ActiveTrials(active))
      read |= {t.number for t in new}
      suggestions = designer.suggest(self._config.alternatives)
      if not suggestions:  # a small discrete space with every configuration taken
        return {}
      # Another worker may have taken one while this one computed: read again, write the
      # choice, then read once more; a worker that finds its choice taken meanwhile (two that
      # wrote at once) moves to its next alternative.
      choices = [space.optuna_params(x.parameters) for x in suggestions]
      params = choices[0]
      for _ in range(len(choices)):
        taken = self._taken(study, space, trial)
        params = next((c for c in choices if _key(space, c) not in taken), params)
        study._storage.set_trial_system_attr(trial._trial_id, SHARED_PARAMS_KEY,  # pylint: disable=protected-access
                                             json.dumps(params))
        if _key(space, params) not in self._taken(study, space, trial):
          break
        choices = [c for c in choices if c is not params]
    return params

  @staticmethod
  def _taken(study: optuna.Study, space: OptunaProblem, trial: FrozenTrial) -> set[tuple]:
    """The configurations the study's other trials hold or were given."""
    others = [_taken_params(t) for t in study.get_trials(deepcopy=False)
              if t.number != trial.number]
    return {_key(space, params) for params in others if space.holds(params)}

  def _designer(self, study: optuna.Study, space: OptunaProblem,
                trial: FrozenTrial) -> tuple[OmniPredDesigner, set[int]]:
    """This study's designer for this space and the trials it has read: the cached one while
    `reuse_designer`, else (or the first time, or for a new space) a fresh one."""
    key = (id(study._storage), study._study_id, repr(space))  # pylint: disable=protected-access
    cached = self._designers.get(key) if self._config.reuse_designer else None
    if cached is None:
      cached = (OmniPredDesigner(space.problem(), seed=self._trial_seed(trial),
                                 config=self._config.designer,
                                 surrogate_factory=self._surrogates()), set())
      if self._config.reuse_designer:
        self._designers[key] = cached
        while len(self._designers) > self._config.max_cached_studies:
          self._designers.popitem(last=False)
    elif key in self._designers:
      self._designers.move_to_end(key)
    return cached

  # --- define-by-run parameters -----------------------------------------------------------
  def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                         param_distribution: BaseDistribution) -> Any:
    value = None
    if self._config.define_by_run == 'model' and len(study.directions) == 1:
      value = self._model_value(study, trial, param_name, param_distribution)
    if value is None:
      # Seeded by trial and parameter, not by call order: processes that share a seed would
      # otherwise draw the same values for their first trials.
      seed = self._trial_seed(trial) ^ zlib.crc32(param_name.encode())
      return optuna.samplers.RandomSampler(seed=seed).sample_independent(
          study, trial, param_name, param_distribution)
    return value

  def _model_value(self, study: optuna.Study, trial: FrozenTrial, name: str,
                   distribution: BaseDistribution) -> Any | None:
    """The value of `name` whose trial-so-far the model gives the highest upper quantile,
    or None (too few trials have it, or the surrogate cannot read partial trials)."""
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    union: dict[str, BaseDistribution] = {}
    for t in finished:
      union.update(t.distributions)
    union.update(trial.distributions)
    union[name] = distribution
    context = [t for t in finished if t.values is not None and np.isfinite(t.values[0])
               and all(union[n] == d for n, d in t.distributions.items())]
    if sum(name in t.params for t in context) < self._config.define_by_run_from:
      return None
    space = OptunaProblem.of(study, union)
    warp = YWarp(maximize=study.direction == optuna.study.StudyDirection.MAXIMIZE, kind='none')
    surrogate = self._conditioned(study, space, context, warp)
    if surrogate is None:
      return None
    codec = space.codec(name)
    rng = np.random.default_rng([self._trial_seed(trial), len(trial.params)])
    values = _candidate_values(distribution, self._config.num_value_candidates, rng)
    best = sorted((t for t in context if name in t.params),
                  key=lambda t: -warp.orient(t.values[0]))[:self._config.num_best_values]
    values += [t.params[name] for t in best]
    base = space.partial_parameters(trial.params)
    rows = [dict(base, **{name: codec.to_vizier(v)}) for v in values]
    level = getattr(self._config.designer.acquisition, 'quantile', acquisition.UCB().quantile)
    upper = surrogate.quantiles(rows, [level])[:, 0]
    return codec.to_optuna(codec.to_vizier(values[int(np.argmax(upper))]))

  def _conditioned(self, study: optuna.Study, space: OptunaProblem, context: list[FrozenTrial],
                   warp: YWarp):
    """A surrogate over the union of the study's parameters that has read `context`; the
    last one is reused while the context and the union stay the same."""
    key = (study._study_id, tuple(repr(c) for c in space.codecs),  # pylint: disable=protected-access
           tuple(t.number for t in context))
    cached = self._define_by_run_cache
    if cached is not None and cached[0] == key:
      return cached[1]
    problem = space.problem()
    info = StudyInfo.from_problem(problem, space.metric_names[0])
    try:
      surrogate = self._surrogates()(problem, info, partial_rows=True)
    except TypeError:  # a surrogate factory that cannot read partial trials
      logging.warning('OmniPredSampler: the surrogate factory takes no partial_rows; '
                      'define-by-run parameters are sampled at random.')
      return None
    surrogate.condition([space.partial_parameters(t.params) for t in context],
                        np.asarray([warp.orient(t.values[0]) for t in context]))
    self._define_by_run_cache = (key, surrogate)
    return surrogate

  # --- hooks -------------------------------------------------------------------------------
  def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                  values: Sequence[float] | None) -> None:
    if self._constraints_func is not None:
      _process_constraints_after_trial(self._constraints_func, study, trial, state)


def _taken_params(trial: FrozenTrial) -> dict[str, Any]:
  """The trial's parameters, with those this sampler chose for it but the objective has not
  asked for yet (a running trial)."""
  if trial.state.is_finished():
    return trial.params
  shared = trial.system_attrs.get(SHARED_PARAMS_KEY)
  return dict(json.loads(shared), **trial.params) if shared else trial.params


def _key(space: OptunaProblem, params: dict[str, Any]) -> tuple:
  return tuple(sorted((k, str(v)) for k, v in space.parameters(params).items()))


def _candidate_values(distribution: BaseDistribution, n: int,
                      rng: np.random.Generator) -> list[Any]:
  """Every choice of a categorical; else `n` values uniform in the distribution (log-uniform
  on a log scale)."""
  d = distribution
  if isinstance(d, CategoricalDistribution):
    return list(d.choices)
  if isinstance(d, (FloatDistribution, IntDistribution)):
    lo, hi = float(d.low), float(d.high)
    if d.log:
      u = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    else:
      u = rng.uniform(lo, hi + (1.0 if isinstance(d, IntDistribution) else 0.0), n)
    if isinstance(d, IntDistribution):
      return [int(min(d.high, np.floor(v))) for v in u]
    return [float(v) for v in u]
  raise TypeError(f'Distribution {type(d).__name__} is not handled by OmniPredSampler.')
