"""What a designer knows of its study: the trials, which of them the model may read, the front.

Infeasible trials and trials without a finite metric are never fed to a surrogate as numbers
(`values` says NaN, `usable` says None); a trial outside the search space is left out with
its reason kept, so one malformed trial cannot break every later suggestion of its study.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from vizier import pyvizier as vz

from designers import hypervolume
from designers.candidates import CandidateSpace, parameter_key
from designers.safety import SafetyConstraints
from designers.warping import YWarp
from vizier_omnipred import StudyInfo, search_space
from vizier_omnipred.episodes import metric_value


class StudyRecord:
  """The completed and active trials of one study, oriented by each objective's `YWarp`."""

  def __init__(self, problem: vz.ProblemStatement, infos: Sequence[StudyInfo],
               warps: Sequence[YWarp], safety: SafetyConstraints):
    self._problem = problem
    self._infos = list(infos)
    self._warps = list(warps)
    self._safety = safety
    self.completed: list[vz.Trial] = []
    self.active: list[vz.Trial] = []
    self.left_out: dict[int, str] = {}  # trial id -> why it does not fit the search space
    self.front = np.zeros((0, len(self._infos)))  # oriented Pareto front (m=1: the best)

  def values(self, trial: vz.Trial) -> np.ndarray | None:
    """Oriented metric values [m] (NaN where a metric is missing or not finite), or None
    for an infeasible or unfinished trial."""
    if trial.infeasible or trial.final_measurement is None:
      return None
    out = np.full(len(self._infos), np.nan)
    for k, (info, warp) in enumerate(zip(self._infos, self._warps)):
      value = metric_value(trial, info.metric_name)
      if value is not None:
        out[k] = warp.orient(value)
    return out

  def usable(self, trial: vz.Trial) -> np.ndarray | None:
    """Oriented values [m] when every objective is finite, else None (a failure)."""
    values = self.values(trial)
    return values if values is not None and np.all(np.isfinite(values)) else None

  def _fits(self, trial: vz.Trial) -> bool:
    """False (and the reason logged and kept) for a trial outside the search space: a
    parameter missing, extra, infeasible or out of bounds."""
    try:
      search_space.check_parameters(self._problem.search_space, trial.parameters)
      return True
    except (ValueError, TypeError) as e:
      self.left_out[trial.id] = str(e)
      logging.warning('OmniPredDesigner leaves out trial %s: %s', trial.id, e)
      return False

  def update(self, completed: Sequence[vz.Trial], active: Sequence[vz.Trial]) -> bool | None:
    """Records new results. -> whether they improved on the front (a new point that nothing
    on it dominates; m=1: a new best), or None when there was no front to improve on."""
    new = [t for t in completed if self._fits(t)]
    self.completed.extend(new)
    self.active = [t for t in active
                   if search_space.is_valid(self._problem.search_space, t.parameters)]
    points = [v for t, v in zip(new, map(self.usable, new))
              if v is not None and self._safety.is_safe(t)]
    if not points:
      return None
    improved = any(not np.any(np.all(self.front >= p, axis=1)) for p in points)
    had_front = len(self.front) > 0
    front = np.vstack([self.front, points])
    self.front = front[hypervolume.pareto_mask(front)]
    return improved if had_front else None

  @property
  def feasible(self) -> list[tuple[vz.Trial, np.ndarray]]:
    """Completed trials with every objective finite, and their oriented values [m]."""
    pairs = [(t, self.usable(t)) for t in self.completed]
    return [(t, v) for t, v in pairs if v is not None]

  @property
  def safe_feasible(self) -> list[tuple[vz.Trial, np.ndarray]]:
    """`feasible`, only the trials that satisfy the SAFETY metrics (all, when none does)."""
    pairs = self.feasible
    return [p for p in pairs if self._safety.is_safe(p[0])] or pairs

  def taken(self) -> set:
    """Keys (`parameter_key`) of the configurations completed or running."""
    return {parameter_key(t.parameters) for t in self.completed + self.active}

  def near_failure(self, unit: np.ndarray, space: CandidateSpace) -> np.ndarray:
    """[n] True where the nearest evaluated trial (unit-cube distance) gave no usable value."""
    failed = np.asarray([self.usable(t) is None for t in self.completed], dtype=bool)
    if not failed.any():
      return np.zeros(len(unit), dtype=bool)
    done = space.to_unit(self.completed)
    d2 = ((unit[:, None, :] - done[None, :, :]) ** 2).sum(-1)
    return failed[d2.argmin(axis=1)]
