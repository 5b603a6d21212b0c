"""`OmniPredDesigner`: a Vizier designer whose surrogate is the in-context OmniPred LM.

One suggestion, five steps (`_model_suggestions`):
  1. y: the feasible trials' values, oriented and warped (`warping.YWarp`).
  2. The surrogate reads them (`Surrogate.condition`: the LM keeps them as its context, and
     from some number of trials adds LoRA steps).
  3. A candidate pool: Halton points plus trust-region moves around the best trials.
  4. The surrogate samples y for every candidate; an acquisition over the samples scores them.
  5. `selection.select` takes the best, no duplicates, kept apart from each other.

Before `num_seed_trials` feasible results it suggests the centre, then Halton points.
Infeasible trials and trials without a finite metric are never fed to the model as numbers:
candidates whose nearest evaluated neighbour failed are ranked last. The surrogate is a
collaborator (`surrogate=` or `surrogate_factory=`); by default the shipped LM.

Several objectives: one surrogate per objective (each reads the trials with a finite value of
its metric, its prompt names that metric and goal), sampled independently, as Vizier's
multi-metric GP fits one GP per metric; `joint_objectives=True` chains LM surrogates instead
(`surrogate.ChainedObjectives`: objective k also reads the trials' values of the objectives
before it, and is sampled at each candidate's samples of them, so the samples are joint).
Candidates are scored by expected hypervolume improvement over the samples
(`hypervolume.expected_improvement`) against the Pareto front of the warped values. A trial
with NaN in one objective still informs the others. SAFETY metrics (`safety.py`) get a
surrogate each too: a candidate's acquisition is weighted by its probability of being safe,
and only safe trials define the best (the front).
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

import attrs
import numpy as np
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import acquisition
from designers.acquisition_search import AcquisitionSearchConfig, search
from designers import hypervolume
from designers.budget import SuggestionClock
from designers.prior_studies import PriorStudy, PriorStudyInput
from designers.safety import SafetyConstraints
from designers.candidates import CandidateSpace, parameter_key
from designers.selection import select
from designers.surrogate import (ChainedObjectives, IndependentObjectives, LMSurrogate,
                                 LMSurrogateFactory, Surrogate, SurrogateFactory)
from designers.trust_region import TrustRegion, TrustRegionConfig
from designers.warping import WARPS, YWarp
from vizier_omnipred import StudyInfo, search_space

_NS = 'omnipred'
# With a time budget, the surrogate's conditioning may use this share of it; sampling the rest.
_CONDITION_SHARE = 0.6
# Conditional spaces: this share of model-phase suggestions is the best candidate of the branch
# (set of active parameters) with the fewest completed trials, so that a branch whose first
# trials were poor still gets tried where the model likes it best.
_BRANCH_EXPLORATION_SHARE = 0.2
# The hypervolume reference point sits this share of each objective's warped range below its
# worst warped value (ranks: 0.1 below 0).
_REFERENCE_MARGIN = 0.1


@attrs.frozen
class OmniPredDesignerConfig:
  """The designer's knobs (the surrogate has its own: `surrogate.LMSurrogateConfig`)."""

  # One objective of several to optimise alone; None: every objective (several: EHVI).
  metric_name: str | None = attrs.field(default=None, kw_only=True)
  # Several objectives: True samples them jointly by the chain rule (objective k reads the
  # trials' values of the ones before it; LM surrogates only); False: each from the parameters
  # alone. Off by measurement (README, benchmarks/multi_objective.py, 3 seeds): independent
  # samples gave the higher hypervolume on ZDT1 (0.976 vs 0.968) and DTLZ2 (0.697 vs 0.585),
  # the chain only on the BBOB pair (0.992 vs 0.984), and it costs 2-3x the sampling time: a
  # candidate's sampled y1 carries the model's error into y2, and in the context y1 was exact.
  joint_objectives: bool = attrs.field(default=False, kw_only=True)
  num_seed_trials: int = attrs.field(default=5, kw_only=True)
  num_candidates: int = attrs.field(default=512, kw_only=True)
  local_fraction: float = attrs.field(default=0.6, kw_only=True)  # of the pool
  num_centres: int = attrs.field(default=3, kw_only=True)  # best trials to move around
  num_samples: int = attrs.field(default=16, kw_only=True)
  acquisition: str = attrs.field(default='ucb', kw_only=True,
                                 validator=attrs.validators.in_(tuple(acquisition.ACQUISITIONS)))
  ucb_quantile: float = attrs.field(default=0.9, kw_only=True)
  # 'auto': ranks in a flat space, the values themselves (an affine map) in a conditional one.
  # Measured (README): a conditional space's branches sit on their own levels, and ranks blow a
  # plateau's tiny differences (ridge's alpha at the 4th decimal) up to the whole range, so
  # the model kept refining it: affine y lowered regret on both conditional problems (5 seeds:
  # branches 0.0073 -> 0.0013, sklearn_family 0.0093 -> 0.0052) but raised it on the flat BBOB
  # studies, whose values span orders of magnitude (seed0 preset 0.041 -> 0.046).
  y_warp: str = attrs.field(default='auto', kw_only=True,
                            validator=attrs.validators.in_(WARPS + ('auto',)))
  trust_region: TrustRegionConfig = attrs.field(factory=TrustRegionConfig, kw_only=True)
  # One objective: evolve the pool under a cheap inner score (an exact upper quantile) and
  # sample only the finalists in full (`acquisition_search`); None: rank the pool itself.
  search: AcquisitionSearchConfig | None = attrs.field(default=None, kw_only=True)
  # One objective: once more than `local_context` trials are feasible, a suggestion (with
  # probability `local_share`) reads only the `local_context` trials nearest the best one and
  # proposes only moves around it. The model standardises parameters and y by its context,
  # so a local context zooms in on the incumbent. None: every suggestion reads every trial.
  local_context: int | None = attrs.field(default=None, kw_only=True)
  local_share: float = attrs.field(default=0.5, kw_only=True)
  time_budget_s: float | None = attrs.field(default=None, kw_only=True)  # per suggest()
  min_candidates: int = attrs.field(default=64, kw_only=True)  # floor when degrading


class OmniPredDesigner(vza.Designer):
  """Surrogate-based Bayesian optimisation for Vizier problems, flat or conditional."""

  def __init__(
      self,
      problem: vz.ProblemStatement,
      *,
      seed: Optional[int] = None,
      config: OmniPredDesignerConfig = OmniPredDesignerConfig(),
      surrogate: Surrogate | None = None,
      surrogate_factory: SurrogateFactory | None = None,
  ):
    """`surrogate`, or one built by `surrogate_factory(problem, study_info)` per objective;
    neither: the shipped LM (`LMSurrogate`; one loaded model shared by the objectives).
    Several objectives are chained (`ChainedObjectives`, joint samples) when the factory is an
    `LMSurrogateFactory` and `config.joint_objectives`; any other factory's surrogates are
    sampled independently."""
    self._problem = problem
    self._config = config
    objectives = [m.name for m in problem.metric_information
                  if m.type == vz.MetricType.OBJECTIVE]
    names = [config.metric_name] if config.metric_name or not objectives else objectives
    self._infos = [StudyInfo.from_problem(problem, name) for name in names]
    warp = config.y_warp
    if warp == 'auto':
      warp = 'none' if problem.search_space.is_conditional else 'rank'
    self._warps = [YWarp(maximize=info.goal == 'MAXIMIZE', kind=warp) for info in self._infos]
    self._space = CandidateSpace(problem.search_space, seed=0 if seed is None else seed)
    self._rng = np.random.default_rng(seed)
    num_safety = sum(m.type == vz.MetricType.SAFETY for m in problem.metric_information)
    if surrogate is not None:
      if len(self._infos) + num_safety > 1:
        raise ValueError(
            f'This problem has {len(self._infos)} objectives {names} and {num_safety} safety'
            ' metrics: pass surrogate_factory (one surrogate per metric), not one surrogate.')
      factory = None
      self._objectives = IndependentObjectives([surrogate])
    else:
      factory = surrogate_factory or (
          LMSurrogate.factory() if len(names) + num_safety > 1 else LMSurrogate)
      if (len(names) > 1 and config.joint_objectives
          and isinstance(factory, LMSurrogateFactory)):
        self._objectives = ChainedObjectives(
            [factory(problem, info, metric_inputs=names[:k])
             for k, info in enumerate(self._infos)], names)
      else:
        self._objectives = IndependentObjectives([factory(problem, info)
                                                  for info in self._infos])
    self._safety = (SafetyConstraints.from_problem(problem, factory) if factory
                    else SafetyConstraints([], []))
    self._completed: list[vz.Trial] = []
    self._active: list[vz.Trial] = []
    self._left_out: dict[int, str] = {}  # trial id -> why it does not fit the search space
    self._region = TrustRegion(config.trust_region)
    self._front = np.zeros((0, len(self._infos)))  # oriented Pareto front (m=1: the best)
    self._seconds_per_candidate: float | None = None
    self._carried = np.zeros((0, self._space.dim))  # the last search's parents
    self._observed: list[np.ndarray] = []  # per objective: the oriented y the model read
    self._priors: list[PriorStudy] = []
    self.last_report: dict = {}

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement, seed: Optional[int] = None,
                   **kwargs) -> 'OmniPredDesigner':
    return cls(problem, seed=seed, **kwargs)

  def set_priors(self, prior_studies: Sequence[PriorStudyInput],
                 names: Sequence[str] | None = None) -> None:
    """Vizier's transfer-learning seam (the signature of `VizierGPBandit.set_priors`): the
    user's other studies, read in the surrogate's context beside this study's trials at every
    model-based suggestion (a surrogate that `reads_prior_studies`: an LM trained with prior
    studies). A prior study whose problem differs is given as (problem, trials); see
    `prior_studies`. `names` label them in the suggestions' metadata (default: prior0, ...)."""
    if self._priors_refused():
      raise ValueError('This designer\'s surrogate cannot read prior studies: load a checkpoint '
                       'trained with them (ModelConfig.prior_studies, e.g. `pretrain '
                       '--family-fraction`), or do not set priors.')
    names = list(names) if names is not None else [f'prior{k}' for k in range(len(prior_studies))]
    if len(names) != len(prior_studies):
      raise ValueError(f'{len(names)} names for {len(prior_studies)} prior studies.')
    self._priors = [PriorStudy.of(study, name) for study, name in zip(prior_studies, names)]

  def _priors_refused(self) -> bool:
    return (self._config.joint_objectives and len(self._infos) > 1) or not all(
        getattr(s, 'reads_prior_studies', False) for s in self._objectives.surrogates)

  def _prior_examples(self) -> tuple[list[list], list[str]]:
    """Per objective, the prior studies' (parameters, y); and the names of those read."""
    per_objective, read = [], []
    for info, warp in zip(self._infos, self._warps):
      studies = []
      for prior in self._priors:
        examples = prior.examples(info, warp.kind, warp.maximize)
        if examples is not None:
          studies.append(examples)
          if prior.name not in read:
            read.append(prior.name)
      per_objective.append(studies)
    return per_objective, read

  @property
  def surrogate(self) -> Surrogate:
    """The surrogate of the (first) objective."""
    return self._objectives.surrogates[0]

  @property
  def num_objectives(self) -> int:
    return len(self._infos)

  # --- state ----------------------------------------------------------------------------
  def _values(self, trial: vz.Trial) -> np.ndarray | None:
    """Oriented metric values [m] (NaN where a metric is missing or not finite), or None
    for an infeasible or unfinished trial."""
    if trial.infeasible or trial.final_measurement is None:
      return None
    metrics = trial.final_measurement.metrics
    out = np.full(len(self._infos), np.nan)
    for k, (info, warp) in enumerate(zip(self._infos, self._warps)):
      metric = metrics.get(info.metric_name)
      if metric is not None and np.isfinite(metric.value):
        out[k] = warp.orient(metric.value)
    return out

  def _usable(self, trial: vz.Trial) -> np.ndarray | None:
    """Oriented values [m] when every objective is finite, else None (a failure)."""
    values = self._values(trial)
    return values if values is not None and np.all(np.isfinite(values)) else None

  def _fits(self, trial: vz.Trial) -> bool:
    """False (and the reason logged and kept) for a trial outside the search space: a
    parameter missing, extra, infeasible or out of bounds. Such a trial is left out of the
    model, so one malformed trial cannot break every later suggestion of its study."""
    try:
      search_space.check_parameters(self._problem.search_space, trial.parameters)
      return True
    except (ValueError, TypeError) as e:
      self._left_out[trial.id] = str(e)
      logging.warning('OmniPredDesigner leaves out trial %s: %s', trial.id, e)
      return False

  def update(self, completed: vza.CompletedTrials, all_active: vza.ActiveTrials) -> None:
    new = [t for t in completed.trials if self._fits(t)]
    self._completed.extend(new)
    self._active = [t for t in all_active.trials
                    if search_space.is_valid(self._problem.search_space, t.parameters)]
    points = [v for t, v in zip(new, map(self._usable, new))
              if v is not None and self._safety.is_safe(t)]
    if points:
      # Improved: a new point that nothing on the front dominates (m=1: a new best).
      improved = any(not np.any(np.all(self._front >= p, axis=1)) for p in points)
      if len(self._front):
        self._region.observe(improved)
      front = np.vstack([self._front, points])
      self._front = front[hypervolume.pareto_mask(front)]

  @property
  def _feasible(self) -> list[tuple[vz.Trial, np.ndarray]]:
    """Completed trials with every objective finite, and their oriented values [m]."""
    pairs = [(t, self._usable(t)) for t in self._completed]
    return [(t, v) for t, v in pairs if v is not None]

  # --- suggest --------------------------------------------------------------------------
  def suggest(self, count: Optional[int] = None) -> Sequence[vz.TrialSuggestion]:
    count = count or 1
    start = time.perf_counter()
    taken = {parameter_key(t.parameters) for t in self._completed + self._active}
    if len(self._feasible) < max(2, self._config.num_seed_trials):
      return self._seed_suggestions(count, taken)
    return self._model_suggestions(count, taken, start)

  def _seed_suggestions(self, count: int, taken: set) -> list[vz.TrialSuggestion]:
    """The centre first, then the next points of ONE quasi-random sequence: successive
    suggest(1) calls walk it contiguously, as one suggest(n) does (no points skipped)."""
    points = []
    if not self._completed and not self._active:
      points.append(self._space.centre())
    points.append(self._space.quasi_random(max(0, count - sum(len(p) for p in points))))
    out = self._pick(np.concatenate(points), None, count, taken)
    for s in out:
      s.metadata.ns(_NS)['phase'] = 'seed'
    return out

  def _local_trials(self) -> set[int] | None:
    """The ids of the `local_context` feasible trials nearest the best (the best among them),
    when this suggestion reads a local context; else None (every trial)."""
    cfg = self._config
    pairs = self._feasible
    if (cfg.local_context is None or len(self._infos) > 1 or len(pairs) <= cfg.local_context
        or self._rng.random() >= cfg.local_share):
      return None
    unit = self._space.to_unit([t for t, _ in pairs])
    best = int(np.argmax([v[0] for _, v in pairs]))
    nearest = np.argsort(((unit - unit[best]) ** 2).sum(axis=1), kind='stable')
    return {pairs[i][0].id for i in nearest[:cfg.local_context]}

  def _condition(self, budget_s: float | None,
                 only: set[int] | None = None) -> tuple[dict, np.ndarray]:
    """Steps 1-2: each objective's surrogate reads the trials with a finite value of it
    (`only`: of those, the trials with these ids). -> (the surrogates' report, the warped
    oriented values [k, m] of the trials read)."""
    per_trial = [(t, self._values(t)) for t in self._completed
                 if only is None or t.id in only]
    per_trial = [(t, v) for t, v in per_trial if v is not None]
    warped_feasible = np.full((len(per_trial), len(self._infos)), np.nan)
    study_units = np.full_like(warped_feasible, np.nan)
    share = (None if budget_s is None
             else budget_s / (len(self._infos) + len(self._safety.metrics)))
    self._observed = []
    for k, warp in enumerate(self._warps):
      rows = [i for i, (_, v) in enumerate(per_trial) if np.isfinite(v[k])]
      self._observed.append(np.asarray([per_trial[i][1][k] for i in rows]))
      warped_feasible[rows, k] = warp.warp(self._observed[k])
      study_units[rows, k] = warp.to_study_direction(warped_feasible[rows, k])
    priors, read = self._prior_examples() if self._priors else ([], [])
    report = self._objectives.condition([t.parameters for t, _ in per_trial], study_units,
                                        time_budget_s=share, prior_studies=priors)
    if read:
      report = dict(report, prior_studies=','.join(read))
    self._safety.condition([t for t, _ in per_trial], share)
    usable = np.all(np.isfinite(warped_feasible), axis=1)
    safe = usable & np.asarray([self._safety.is_safe(t) for t, _ in per_trial], dtype=bool)
    return report, warped_feasible[safe if safe.any() else usable]

  def _pool(self, n: int, local: bool = False) -> np.ndarray:
    """Step 3: [n, d] unit-cube candidates, the local ones around the best trials (several
    objectives: around Pareto-optimal trials). In a conditional space the best trial of every
    branch (set of active parameters) is a centre too, so a branch whose children are still
    untuned is not abandoned to the first branch that looked good."""
    cfg = self._config
    pairs = self._feasible
    safe = [p for p in pairs if self._safety.is_safe(p[0])]
    pairs = safe or pairs
    if len(self._infos) == 1:
      pairs = sorted(pairs, key=lambda p: -p[1][0])
    else:
      on_front = hypervolume.pareto_mask(np.asarray([v for _, v in pairs]))
      pairs = [pairs[i] for i in self._rng.permutation(np.flatnonzero(on_front))]
    centres = [t for t, _ in pairs[: cfg.num_centres]]
    branches = {frozenset(t.parameters) for t in centres}
    for t, _ in pairs[cfg.num_centres:]:
      if frozenset(t.parameters) not in branches:
        branches.add(frozenset(t.parameters))
        centres.append(t)
    n_local = n if local else int(round(n * cfg.local_fraction))
    if local:
      centres = centres[:1]
    return np.concatenate([
        self._space.local(self._space.to_unit(centres), n_local, self._region.radius, self._rng),
        self._space.quasi_random(n - n_local),
    ])

  def _score(self, samples: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """Step 4's acquisition. samples [n, S, m] oriented warped; warped [k, m]: the trials'."""
    cfg = self._config
    if samples.shape[2] == 1:
      return acquisition.score(cfg.acquisition, samples[:, :, 0], best=float(warped.max()),
                               rng=self._rng, quantile=cfg.ucb_quantile)
    front = warped[hypervolume.pareto_mask(warped)]
    spread = np.ptp(warped, axis=0)
    ref = warped.min(axis=0) - _REFERENCE_MARGIN * np.where(spread > 0, spread, 1.0)
    gain = hypervolume.expected_improvement(samples, front, ref, rng=self._rng)
    # Where no sample improves anything, the summed medians order the candidates.
    median = np.median(samples, axis=1).sum(axis=1)
    return gain / (np.ptp(gain) or 1.0) + 1e-6 * (median - median.min()) / (np.ptp(median) or 1.0)

  def _model_suggestions(self, count: int, taken: set, start: float) -> list[vz.TrialSuggestion]:
    cfg = self._config
    clock = SuggestionClock(cfg.time_budget_s, condition_share=_CONDITION_SHARE,
                            min_candidates=cfg.min_candidates,
                            seconds_per_candidate=self._seconds_per_candidate, start=start)
    local = self._local_trials()
    report, warped = self._condition(clock.condition_budget_s, local)  # steps 1-2
    clock.note_condition(report)
    n = clock.pool_size(max(cfg.num_candidates, 4 * count), count)
    unit = self._pool(n, local=local is not None)  # step 3
    searched = 0
    if cfg.search is not None and len(self._infos) == 1 and not self._safety.metrics:
      finalists = max(cfg.search.finalists, 4 * count)
      found = search(self._space, unit, self._inner_score, radius=self._region.radius,
                     rng=self._rng, config=attrs.evolve(cfg.search, finalists=finalists),
                     carried=self._carried)
      self._carried = found.finalists[:cfg.search.parents]
      unit, searched, n = found.finalists, found.evaluated, len(found.finalists)
    params = self._space.to_parameters(unit)
    first = clock.probe_size(n)
    samples = self._sample(params[:first])  # step 4
    keep = clock.after_probe(n, first, self._seconds_per_candidate)
    n, unit, params = keep, unit[:keep], params[:keep]
    if keep > first:
      samples = np.concatenate([samples, self._sample(params[first:])])
    oriented = np.stack([w.from_study_direction(samples[:, :, k])
                         for k, w in enumerate(self._warps)], axis=-1)
    scores = self._score(oriented, warped)
    if self._safety.metrics:  # acquisition in [0, 1], weighted by P(safe)
      p_safe = self._safety.probability(params, cfg.num_samples,
                                        seed=int(self._rng.integers(2**31)))
      unit_score = (scores - scores.min()) / (np.ptp(scores) or 1.0)
      scores = p_safe * unit_score + 1e-3 * unit_score
    scores = np.where(self._near_failure(unit), -np.inf, scores)
    if self._problem.search_space.is_conditional and self._rng.random() < _BRANCH_EXPLORATION_SHARE:
      scores = self._least_tried_branch(params, scores)
    out = self._pick(unit, scores, count, taken, params=params, samples=samples)  # step 5
    self.last_report = dict(report, candidates=n, searched=searched,
                            seconds=time.perf_counter() - start,
                            radius=self._region.radius, degraded=clock.summary)
    for s in out:
      md = s.metadata.ns(_NS)
      md['phase'] = 'model'
      md['acquisition'] = cfg.acquisition
      md['fit_steps'] = str(report.get('fit_steps', 0))
      if searched:
        md['searched_candidates'] = str(searched)
      if local is not None:
        md['local_context'] = str(len(local))
      if 'parameters_read' in report:  # the parameters the surrogate chose to read
        md['parameters_read'] = report['parameters_read']
      for key in ('prior_studies', 'prior_trials'):  # which prior studies, and how much
        if key in report:
          md[key] = str(report[key])
      if report.get('parameters_read_cut'):
        md['parameters_read_cut'] = 'the choice stopped at its bound (RelevanceConfig.max_scores)'
      if self._left_out:
        md['left_out_trials'] = str(len(self._left_out))
      if clock.notes:
        md['degraded'] = clock.summary
        logging.info('OmniPredDesigner degraded: %s', md['degraded'])
    return out

  def _inner_score(self, unit: np.ndarray) -> np.ndarray:
    """The search's cheap score [n]: the exact upper quantile (`search.inner_level`) of the
    oriented prediction; -inf where the nearest evaluated trial failed."""
    level = self._config.search.inner_level
    warp = self._warps[0]
    params = self._space.to_parameters(unit)
    q = self._objectives.quantiles(params, [level if warp.maximize else 1.0 - level],
                                   seed=int(self._rng.integers(2**31)))[:, 0, 0]
    return np.where(self._near_failure(unit), -np.inf, warp.from_study_direction(q))

  def _least_tried_branch(self, params: list, scores: np.ndarray) -> np.ndarray:
    """scores, -inf outside the pool's branch with the fewest completed trials."""
    branch = [frozenset(p) for p in params]
    tried = {}
    for t in self._completed:
      key = frozenset(t.parameters)
      tried[key] = tried.get(key, 0) + 1
    target = min(set(branch), key=lambda b: (tried.get(b, 0), sorted(b)))
    return np.where([b == target for b in branch], scores, -np.inf)

  def _sample(self, params: list) -> np.ndarray:
    """Step 4: [n, num_samples, m] y samples (each objective's surrogate in its study
    direction); updates the per-candidate cost estimate."""
    t0 = time.perf_counter()
    seed = int(self._rng.integers(2**31))
    samples = self._objectives.sample(params, self._config.num_samples, seed=seed)
    self._seconds_per_candidate = (time.perf_counter() - t0) / len(params)
    return samples

  def _near_failure(self, unit: np.ndarray) -> np.ndarray:
    """True where the nearest evaluated trial (unit-cube distance) gave no usable value."""
    if not self._completed:
      return np.zeros(len(unit), dtype=bool)
    done = self._space.to_unit(self._completed)
    failed = np.asarray([self._usable(t) is None for t in self._completed])
    if not failed.any():
      return np.zeros(len(unit), dtype=bool)
    d2 = ((unit[:, None, :] - done[None, :, :]) ** 2).sum(-1)
    return failed[d2.argmin(axis=1)]

  def _pick(self, unit: np.ndarray, scores: np.ndarray | None, count: int, taken: set, *,
            params: list | None = None, samples: np.ndarray | None = None
            ) -> list[vz.TrialSuggestion]:
    """Step 5, as Vizier suggestions with the predicted median in their metadata, in the
    metric's units (the model's warped median mapped back through the observed values)."""
    params = params if params is not None else self._space.to_parameters(unit)
    picked = select(
        unit, params, scores, count, taken, key=parameter_key,
        min_distance=0.5 * self._region.radius if count > 1 else 0.0,
        fill=lambda: self._space.to_parameters(self._space.quasi_random(1))[0])
    out = []
    for p, i in picked:
      s = vz.TrialSuggestion(p)
      if samples is not None and i is not None:
        medians = [w.orient(w.unwarp(w.from_study_direction(np.median(samples[i, :, k])),
                                     self._observed[k]))
                   for k, w in enumerate(self._warps)]
        if len(self._infos) == 1:
          s.metadata.ns(_NS)['predicted_median'] = f'{medians[0]:.6g}'
        else:
          for info, med in zip(self._infos, medians):
            s.metadata.ns(_NS)[f'predicted_median:{info.metric_name}'] = f'{med:.6g}'
      out.append(s)
    return out
