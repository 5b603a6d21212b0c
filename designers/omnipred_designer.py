"""`OmniPredDesigner`: a Vizier designer whose surrogate is the in-context OmniPred LM.

One suggestion, five steps (`_model_suggestions`):
  1. y: the feasible trials' values, oriented and warped (`warping.YWarp`).
  2. The surrogate reads them (`Surrogate.condition`: the LM keeps them as its context, and
     from some number of trials adds LoRA steps).
  3. A candidate pool: Halton points plus trust-region moves around the best trials.
  4. The acquisition optimiser (`config.optimizer`) turns the pool into the candidates to
     sample; the surrogate samples y for them, the acquisition (`config.acquisition`) scores
     them.
  5. `selection.select` takes the best, no duplicates, kept apart from each other.

With `quadratic_step` (the default; one objective over continuous parameters), a suggestion
whose turn it is and whose local quadratic fit holds is that quadratic's minimiser near the
best trial instead (`quadratic_step.py`); the LM suggests the rest.

Before `num_seed_trials` feasible results: the centre (with prior studies set: their best
trials), then Halton points; the prior studies' best trials also join the pool. Failed trials
are never fed to the model as numbers (`study_record`); candidates nearest one are ranked last.
Surrogate, acquisition and optimiser are collaborators, by default the shipped LM, UCB and
the ranked pool.

Several objectives: one surrogate per objective (each reads the trials with a finite value of
its metric), sampled independently as Vizier's multi-metric GP fits one GP per metric, or
chained (`joint_objectives`, `surrogate.ChainedObjectives`); scored by EHVI by default. SAFETY
metrics get a surrogate each too (`safety.py`): the acquisition is weighted by a candidate's
probability of being safe (`acquisition.SafetyWeighted`); only safe trials define the front.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import acquisition
from designers import candidate_pool
from designers import suggestion_metadata
from designers.budget import SuggestionClock
from designers.candidates import CandidateSpace, parameter_key
from designers.designer_config import OmniPredDesignerConfig
from designers import prior_studies as prior_studies_lib
from designers import quadratic_step
from designers.prior_studies import PriorStudy, PriorStudyInput, prior_examples
from designers.safety import SafetyConstraints
from designers.seed_region import SeedRegion
from designers.selection import select
from designers.study_record import StudyRecord
from designers.surrogate import Surrogate, SurrogateFactory, build_objectives
from designers.trust_region import TrustRegion
from designers.warping import YWarp, median_in_units, warp_columns
from vizier_omnipred import StudyInfo

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']
_NS = suggestion_metadata.NAMESPACE
# With a time budget, the surrogate's conditioning may use this share of it; sampling the rest.
_CONDITION_SHARE = 0.6


class OmniPredDesigner(vza.Designer):
  """Surrogate-based Bayesian optimisation for Vizier problems, flat or conditional."""

  def __init__(self, problem: vz.ProblemStatement, *, seed: Optional[int] = None,
               config: OmniPredDesignerConfig = OmniPredDesignerConfig(),
               surrogate: Surrogate | None = None,
               surrogate_factory: SurrogateFactory | None = None):
    """`surrogate`, or one built by `surrogate_factory(problem, study_info)` per metric;
    neither: the shipped LM (`LMSurrogate`; one loaded model shared by the metrics)."""
    self._problem = problem
    self._config = config
    objectives = [m.name for m in problem.metric_information
                  if m.type == vz.MetricType.OBJECTIVE]
    names = [config.metric_name] if config.metric_name or not objectives else objectives
    self._infos = [StudyInfo.from_problem(problem, name) for name in names]
    warp = config.warp_kind(problem.search_space.is_conditional)
    self._warps = [YWarp(maximize=info.goal == 'MAXIMIZE', kind=warp) for info in self._infos]
    self._space = CandidateSpace(problem.search_space, seed=0 if seed is None else seed)
    self._rng = np.random.default_rng(seed)
    self._objectives, factory = build_objectives(problem, self._infos, surrogate,
                                                 surrogate_factory, config.joint_objectives)
    self._safety = (SafetyConstraints.from_problem(problem, factory) if factory
                    else SafetyConstraints([], []))
    self._chosen_acquisition(with_priors=False)  # a choice it cannot score fails here
    self._record = StudyRecord(problem, self._infos, self._warps, self._safety)
    self._region = TrustRegion(config.trust_region)
    self._seconds_per_candidate: float | None = None
    self._carried = np.zeros((0, self._space.dim))  # the last search's parents
    self._observed: list[np.ndarray] = []  # per objective: the oriented y the model read
    self._priors: list[PriorStudy] = []
    self._prior_best = np.zeros((0, self._space.dim))  # the prior studies' best, unit cube
    self._seed_region: SeedRegion | None = None  # where seeds are drawn (None: everywhere)
    self.last_report: dict = {}

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement, seed: Optional[int] = None,
                   **kwargs) -> 'OmniPredDesigner':
    return cls(problem, seed=seed, **kwargs)

  def set_priors(self, prior_studies: Sequence[PriorStudyInput],
                 names: Sequence[str] | None = None) -> None:
    """Vizier's transfer-learning seam (`VizierGPBandit.set_priors`'s signature): the user's
    other studies, read in the context of a surrogate that `reads_prior_studies` at every
    model-based suggestion; (problem, trials) for one whose problem differs (`prior_studies`).
    `names` label them in the suggestions' metadata (default: prior0, ...)."""
    prior_studies_lib.check_readable(self._objectives.surrogates, chained=(
        self._config.joint_objectives and len(self._infos) > 1))
    self._priors = prior_studies_lib.named(prior_studies, names)
    self._chosen_acquisition(with_priors=bool(self._priors))
    self._prior_best = self._space.to_unit(prior_studies_lib.best_trials(
        self._priors, self._infos[0], self._config.num_prior_centres, self._space.names),
        foreign=True)
    share = self._config.seed_region_share
    region_trials = (prior_studies_lib.best_share(self._priors, self._infos[0], share,
                                                  self._space.names) if share else [])
    self._seed_region = (SeedRegion.spanning(self._space, region_trials) if region_trials
                         else None)

  def _chosen_acquisition(self, with_priors: bool) -> acquisition.Acquisition:
    """The config's acquisition (`acquisition_with_priors` once prior studies are set, when
    given and it scores this problem's objectives) for this problem's objectives and safety
    metrics."""
    chosen = self._config.acquisition_with_priors if with_priors else None
    if getattr(chosen, 'objectives', None) not in (None, len(self._infos)):
      chosen = None  # a one-objective choice for priors; the study's own scores several
    return acquisition.for_problem(chosen if chosen is not None else self._config.acquisition,
                                   len(self._infos), bool(self._safety.metrics))

  def _reads_priors(self) -> bool:
    """Prior studies are set and the study has fewer trials than `prior_studies_until`."""
    until = self._config.prior_studies_until
    return bool(self._priors) and (until is None or len(self._record.completed) < until)

  @property
  def surrogate(self) -> Surrogate:
    """The surrogate of the (first) objective."""
    return self._objectives.surrogates[0]

  @property
  def num_objectives(self) -> int:
    return len(self._infos)

  def update(self, completed: vza.CompletedTrials, all_active: vza.ActiveTrials) -> None:
    improved = self._record.update(completed.trials, all_active.trials)
    if improved is not None:
      self._region.observe(improved)

  # --- suggest --------------------------------------------------------------------------
  def suggest(self, count: Optional[int] = None) -> Sequence[vz.TrialSuggestion]:
    count = count or 1
    start = time.perf_counter()
    taken = self._record.taken()
    if len(self._record.feasible) < self._config.seed_trials(self._reads_priors()):
      return self._seed_suggestions(count, taken)
    out = self._quadratic_suggestion(taken)
    if out:
      taken = taken | {parameter_key(s.parameters) for s in out}
      count -= 1
    return out + (self._model_suggestions(count, taken, start) if count else [])

  def _quadratic_suggestion(self, taken: set) -> list[vz.TrialSuggestion]:
    """[the local quadratic model's step] on its turn (`quadratic_step`), where it applies
    (one objective, no safety metric, every parameter continuous) and its fit holds; else []."""
    cfg = self._config.quadratic_step
    if (cfg is None or len(self._infos) > 1 or self._safety.metrics
        or not self._space.all_continuous):
      return []
    pairs = self._record.feasible
    turn = len(pairs) - self._config.seed_trials(self._reads_priors())
    if turn % cfg.every != cfg.every - 1:
      return []
    oriented = np.asarray([v[0] for _, v in pairs])
    failed = quadratic_step.failed_steps(
        [t.metadata.ns(_NS).get('phase') == 'quadratic_step' for t, _ in pairs], oriented)
    step = quadratic_step.propose(self._space.to_unit([t for t, _ in pairs]), oriented, cfg,
                                  cfg.radius(failed), lowest=cfg.fits_lowest(failed))
    if step is None:
      return []
    params = self._space.to_parameters(step.point[None])[0]
    if parameter_key(params) in taken:
      return []
    s = vz.TrialSuggestion(params)
    suggestion_metadata.describe_quadratic_step(s.metadata.ns(_NS), step)
    self.last_report = dict(quadratic_fit=step.fit)
    return [s]

  def _seed_suggestions(self, count: int, taken: set) -> list[vz.TrialSuggestion]:
    """The centre first (with `seed_with_prior_best` and prior studies set: the prior
    studies' best points not yet tried instead), then the next points of ONE quasi-random
    sequence (with `seed_region_share` and prior studies set: spread over the box their best
    trials span): successive suggest(1) calls walk it contiguously, as one suggest(n) does."""
    points = []
    if self._config.seed_with_prior_best and len(self._prior_best) and self._reads_priors():
      fresh = [parameter_key(p) not in taken
               for p in self._space.to_parameters(self._prior_best)]
      points.append(self._prior_best[np.asarray(fresh, dtype=bool)][:count])
    elif not self._record.completed and not self._record.active:
      points.append(self._space.centre())
    region = self._seed_region if self._reads_priors() else None
    points.append(self._space.quasi_random(max(0, count - sum(len(p) for p in points)),
                                           within=region.place if region else None))
    out = self._pick(np.concatenate(points), None, count, taken)
    for s in out:
      s.metadata.ns(_NS)['phase'] = 'seed'
    return out

  def _condition(self, budget_s: float | None,
                 only: set[int] | None = None) -> tuple[dict, np.ndarray]:
    """Steps 1-2: each objective's surrogate reads the trials with a finite value of it
    (`only`: of those, the trials with these ids). -> (the surrogates' report, the warped
    oriented values [k, m] of the trials read)."""
    per_trial = [(t, self._record.values(t)) for t in self._record.completed
                 if only is None or t.id in only]
    per_trial = [(t, v) for t, v in per_trial if v is not None]
    share = (None if budget_s is None
             else budget_s / (len(self._infos) + len(self._safety.metrics)))
    self._observed, warped, study_units = warp_columns(
        self._warps, np.asarray([v for _, v in per_trial]).reshape(-1, len(self._infos)))
    priors, read = (prior_examples(self._priors, self._infos, self._warps)
                    if self._reads_priors() else ([], []))
    report = self._objectives.condition([t.parameters for t, _ in per_trial], study_units,
                                        time_budget_s=share, prior_studies=priors)
    if read:
      report = dict(report, prior_studies=','.join(read))
    self._safety.condition([t for t, _ in per_trial], share)
    usable = np.all(np.isfinite(warped), axis=1)
    safe = usable & np.asarray([self._safety.is_safe(t) for t, _ in per_trial], dtype=bool)
    return report, warped[safe if safe.any() else usable]

  def _model_suggestions(self, count: int, taken: set, start: float) -> list[vz.TrialSuggestion]:
    cfg = self._config
    with_priors = self._reads_priors()
    chosen = self._chosen_acquisition(with_priors)
    clock = SuggestionClock(cfg.time_budget_s, condition_share=_CONDITION_SHARE,
                            min_candidates=cfg.min_candidates,
                            seconds_per_candidate=self._seconds_per_candidate, start=start)
    local = (None if len(self._infos) > 1 else candidate_pool.local_trials(
        self._space, self._record.feasible, cfg.local_context, cfg.local_share, self._rng))
    report, warped = self._condition(clock.condition_budget_s, local)  # steps 1-2
    marks = [start, time.perf_counter()]  # the time split: condition, search, sample + select
    clock.note_condition(report)
    n = clock.pool_size(max(cfg.num_candidates, 4 * count), count)
    around = candidate_pool.centres(self._record.safe_feasible, cfg.num_centres, self._rng)
    pool = candidate_pool.pool(  # step 3
        self._space, around if local is None else around[:1], n, radius=self._region.radius,
        local_fraction=cfg.local_fraction if local is None else 1.0, rng=self._rng,
        min_scale=cfg.trust_region.min_scale,
        also=self._prior_best if with_priors else self._prior_best[:0])
    one_objective = len(self._infos) == 1 and not self._safety.metrics
    optimizer = (cfg.optimizer_with_priors if with_priors and cfg.optimizer_with_priors
                 is not None else cfg.optimizer)
    proposal = optimizer.propose(  # step 4
        self._space, pool, self._quantile_score if one_objective else None,
        radius=self._region.radius, rng=self._rng, min_candidates=4 * count,
        carried=self._carried)
    self._carried, unit = proposal.carried, proposal.candidates
    marks.append(time.perf_counter())
    n, params = len(unit), self._space.to_parameters(unit)
    first = clock.probe_size(n)
    samples = self._sample(params[:first])
    keep = clock.after_probe(n, first, self._seconds_per_candidate)
    n, unit, params = keep, unit[:keep], params[:keep]
    if keep > first:
      samples = np.concatenate([samples, self._sample(params[first:])])
    oriented = np.stack([w.from_study_direction(samples[:, :, k])
                         for k, w in enumerate(self._warps)], axis=-1)
    context = acquisition.AcquisitionContext(
        warped, self._rng, lambda: self._safety.probability(
            params, cfg.num_samples, seed=int(self._rng.integers(2**31))))
    scores = chosen(oriented, context)
    scores = np.where(self._record.near_failure(unit, self._space), -np.inf, scores)
    if (self._problem.search_space.is_conditional
        and self._rng.random() < candidate_pool.BRANCH_EXPLORATION_SHARE):
      scores = candidate_pool.least_tried_branch(params, scores, self._record.completed)
    out = self._pick(unit, scores, count, taken, params=params, samples=samples)  # step 5
    marks.append(time.perf_counter())
    self.last_report = dict(report, candidates=n, searched=proposal.evaluated,
                            seconds=marks[-1] - start, radius=self._region.radius,
                            degraded=clock.summary, split=dict(zip(
                                ('condition', 'search', 'sample'), np.diff(marks).tolist())))
    for s in out:
      suggestion_metadata.describe_model_choice(
          s.metadata.ns(_NS), report, acquisition=chosen.name,
          searched=proposal.evaluated, local=local, left_out=len(self._record.left_out),
          degraded=clock.summary if clock.notes else None)
    return out

  def _quantile_score(self, unit: np.ndarray, level: float) -> np.ndarray:
    """The optimiser's cheap score [n]: the exact oriented `level` quantile; -inf near failures."""
    warp = self._warps[0]
    q = self._objectives.quantiles(self._space.to_parameters(unit),
                                   [level if warp.maximize else 1.0 - level],
                                   seed=int(self._rng.integers(2**31)))[:, 0, 0]
    return np.where(self._record.near_failure(unit, self._space), -np.inf,
                    warp.from_study_direction(q))

  def _sample(self, params: list) -> np.ndarray:
    """Step 4: [n, num_samples, m] y samples, each in its study direction; times them."""
    t0 = time.perf_counter()
    seed = int(self._rng.integers(2**31))
    samples = self._objectives.sample(params, self._config.num_samples, seed=seed)
    self._seconds_per_candidate = (time.perf_counter() - t0) / len(params)
    return samples

  def _pick(self, unit: np.ndarray, scores: np.ndarray | None, count: int, taken: set, *,
            params: list | None = None, samples: np.ndarray | None = None
            ) -> list[vz.TrialSuggestion]:
    """Step 5, as Vizier suggestions with the predicted medians (metric units) in metadata."""
    params = params if params is not None else self._space.to_parameters(unit)
    picked = select(
        unit, params, scores, count, taken, key=parameter_key,
        min_distance=0.5 * self._region.radius if count > 1 else 0.0,
        fill=lambda: self._space.to_parameters(self._space.quasi_random(1))[0])
    out = []
    for p, i in picked:
      s = vz.TrialSuggestion(p)
      if samples is not None and i is not None:
        suggestion_metadata.predicted_medians(
            s.metadata.ns(_NS), [info.metric_name for info in self._infos],
            median_in_units(self._warps, samples[i], self._observed))
      out.append(s)
    return out
