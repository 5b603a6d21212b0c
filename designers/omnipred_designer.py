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
from designers.budget import SuggestionClock
from designers.candidates import CandidateSpace, parameter_key
from designers.selection import select
from designers.surrogate import LMSurrogate, Surrogate, SurrogateFactory
from designers.trust_region import TrustRegion, TrustRegionConfig
from designers.warping import WARPS, YWarp
from vizier_omnipred import StudyInfo, search_space

_NS = 'omnipred'
# With a time budget, the surrogate's conditioning may use this share of it; sampling the rest.
_CONDITION_SHARE = 0.6


@attrs.frozen
class OmniPredDesignerConfig:
  """The designer's knobs (the surrogate has its own: `surrogate.LMSurrogateConfig`)."""

  metric_name: str | None = attrs.field(default=None, kw_only=True)  # None: first objective
  num_seed_trials: int = attrs.field(default=5, kw_only=True)
  num_candidates: int = attrs.field(default=512, kw_only=True)
  local_fraction: float = attrs.field(default=0.6, kw_only=True)  # of the pool
  num_centres: int = attrs.field(default=3, kw_only=True)  # best trials to move around
  num_samples: int = attrs.field(default=16, kw_only=True)
  acquisition: str = attrs.field(default='ucb', kw_only=True,
                                 validator=attrs.validators.in_(tuple(acquisition.ACQUISITIONS)))
  ucb_quantile: float = attrs.field(default=0.9, kw_only=True)
  y_warp: str = attrs.field(default='rank', kw_only=True, validator=attrs.validators.in_(WARPS))
  trust_region: TrustRegionConfig = attrs.field(factory=TrustRegionConfig, kw_only=True)
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
    """`surrogate`, or one built by `surrogate_factory(problem, study_info)`; neither: the
    shipped LM (`LMSurrogate` with its default config)."""
    self._problem = problem
    self._config = config
    objectives = [m.name for m in problem.metric_information
                  if m.type == vz.MetricType.OBJECTIVE]
    if len(objectives) > 1 and config.metric_name is None:
      raise ValueError(
          f'OmniPredDesigner optimises one objective; this problem has {len(objectives)}: '
          f'{objectives}. Name the one to optimise with OmniPredDesignerConfig(metric_name=...), '
          'or use a multi-objective designer (e.g. NSGA2).')
    self._info = StudyInfo.from_problem(problem, config.metric_name)
    self._warp = YWarp(maximize=self._info.goal == 'MAXIMIZE', kind=config.y_warp)
    self._space = CandidateSpace(problem.search_space, seed=0 if seed is None else seed)
    self._rng = np.random.default_rng(seed)
    if surrogate is None:
      surrogate = (surrogate_factory or LMSurrogate)(problem, self._info)
    self._surrogate = surrogate
    self._completed: list[vz.Trial] = []
    self._active: list[vz.Trial] = []
    self._left_out: dict[int, str] = {}  # trial id -> why it does not fit the search space
    self._region = TrustRegion(config.trust_region)
    self._best: float | None = None  # oriented: larger is better
    self._seconds_per_candidate: float | None = None
    self.last_report: dict = {}

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement, seed: Optional[int] = None,
                   **kwargs) -> 'OmniPredDesigner':
    return cls(problem, seed=seed, **kwargs)

  @property
  def surrogate(self) -> Surrogate:
    return self._surrogate

  # --- state ----------------------------------------------------------------------------
  def _value(self, trial: vz.Trial) -> float | None:
    """Oriented metric value, or None when the trial gives no usable number."""
    if trial.infeasible or trial.final_measurement is None:
      return None
    metric = trial.final_measurement.metrics.get(self._info.metric_name)
    if metric is None or not np.isfinite(metric.value):
      return None
    return self._warp.orient(metric.value)

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
    values = [v for v in map(self._value, new) if v is not None]
    if values:
      improved = self._best is None or max(values) > self._best
      if self._best is not None:
        self._region.observe(improved)
      self._best = max(values) if self._best is None else max(self._best, max(values))

  @property
  def _feasible(self) -> list[tuple[vz.Trial, float]]:
    pairs = [(t, self._value(t)) for t in self._completed]
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

  def _condition(self, budget_s: float | None) -> tuple[dict, float]:
    """Steps 1-2. -> (the surrogate's report, best warped y, oriented)."""
    pairs = self._feasible
    warped = self._warp.warp(np.asarray([v for _, v in pairs]))
    report = self._surrogate.condition([t.parameters for t, _ in pairs],
                                       self._warp.to_study_direction(warped),
                                       time_budget_s=budget_s)
    return report, float(warped.max())

  def _pool(self, n: int) -> np.ndarray:
    """Step 3: [n, d] unit-cube candidates."""
    cfg = self._config
    pairs = sorted(self._feasible, key=lambda p: -p[1])
    centres = self._space.to_unit([t for t, _ in pairs[: cfg.num_centres]])
    n_local = int(round(n * cfg.local_fraction))
    return np.concatenate([
        self._space.local(centres, n_local, self._region.radius, self._rng),
        self._space.quasi_random(n - n_local),
    ])

  def _model_suggestions(self, count: int, taken: set, start: float) -> list[vz.TrialSuggestion]:
    cfg = self._config
    clock = SuggestionClock(cfg.time_budget_s, condition_share=_CONDITION_SHARE,
                            min_candidates=cfg.min_candidates,
                            seconds_per_candidate=self._seconds_per_candidate, start=start)
    report, best = self._condition(clock.condition_budget_s)  # steps 1-2
    clock.note_condition(report)
    n = clock.pool_size(max(cfg.num_candidates, 4 * count), count)
    unit = self._pool(n)  # step 3
    params = self._space.to_parameters(unit)
    first = clock.probe_size(n)
    samples = self._sample(params[:first])  # step 4
    keep = clock.after_probe(n, first, self._seconds_per_candidate)
    n, unit, params = keep, unit[:keep], params[:keep]
    if keep > first:
      samples = np.concatenate([samples, self._sample(params[first:])])
    scores = acquisition.score(cfg.acquisition, self._warp.from_study_direction(samples),
                               best=best, rng=self._rng, quantile=cfg.ucb_quantile)
    scores = np.where(self._near_failure(unit), -np.inf, scores)
    out = self._pick(unit, scores, count, taken, params=params, samples=samples)  # step 5
    self.last_report = dict(report, candidates=n, seconds=time.perf_counter() - start,
                            radius=self._region.radius, degraded=clock.summary)
    for s in out:
      md = s.metadata.ns(_NS)
      md['phase'] = 'model'
      md['acquisition'] = cfg.acquisition
      md['fit_steps'] = str(report.get('fit_steps', 0))
      if self._left_out:
        md['left_out_trials'] = str(len(self._left_out))
      if clock.notes:
        md['degraded'] = clock.summary
        logging.info('OmniPredDesigner degraded: %s', md['degraded'])
    return out

  def _sample(self, params: list) -> np.ndarray:
    """Step 4: [n, num_samples] y samples; updates the per-candidate cost estimate."""
    t0 = time.perf_counter()
    samples = self._surrogate.sample(params, self._config.num_samples,
                                     seed=int(self._rng.integers(2**31)))
    self._seconds_per_candidate = (time.perf_counter() - t0) / len(params)
    return samples

  def _near_failure(self, unit: np.ndarray) -> np.ndarray:
    """True where the nearest evaluated trial (unit-cube distance) gave no usable value."""
    if not self._completed:
      return np.zeros(len(unit), dtype=bool)
    done = self._space.to_unit(self._completed)
    failed = np.asarray([self._value(t) is None for t in self._completed])
    if not failed.any():
      return np.zeros(len(unit), dtype=bool)
    d2 = ((unit[:, None, :] - done[None, :, :]) ** 2).sum(-1)
    return failed[d2.argmin(axis=1)]

  def _pick(self, unit: np.ndarray, scores: np.ndarray | None, count: int, taken: set, *,
            params: list | None = None, samples: np.ndarray | None = None
            ) -> list[vz.TrialSuggestion]:
    """Step 5, as Vizier suggestions with the predicted median in their metadata."""
    params = params if params is not None else self._space.to_parameters(unit)
    picked = select(
        unit, params, scores, count, taken, key=parameter_key,
        min_distance=0.5 * self._region.radius if count > 1 else 0.0,
        fill=lambda: self._space.to_parameters(self._space.quasi_random(1))[0])
    out = []
    for p, i in picked:
      s = vz.TrialSuggestion(p)
      if samples is not None and i is not None:
        s.metadata.ns(_NS)['predicted_median'] = f'{np.median(samples[i]):.6g}'
      out.append(s)
    return out
