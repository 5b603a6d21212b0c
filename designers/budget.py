"""The per-suggestion time budget: what conditioning may spend, how many candidates the rest
affords, and notes that say what the clock cut (they go into the suggestions' metadata).

Without a budget nothing is cut. With one, conditioning (LoRA steps) gets `condition_share`
of it; the candidate pool is sized from the last measured seconds per candidate; the first
model suggestion, which has no such measurement, samples a probe batch of `min_candidates`
first and sizes the rest from its cost.
"""

from __future__ import annotations

import time


class SuggestionClock:
  """One suggestion's budget. `seconds_per_candidate`: the last measured sampling cost."""

  def __init__(self, budget_s: float | None, *, condition_share: float, min_candidates: int,
               seconds_per_candidate: float | None, start: float | None = None):
    self.start = time.perf_counter() if start is None else start
    self.budget_s = budget_s
    self.deadline = None if budget_s is None else self.start + budget_s
    self._condition_share = condition_share
    self._min_candidates = min_candidates
    self._per_candidate = seconds_per_candidate
    self.notes: list[str] = []

  @property
  def condition_budget_s(self) -> float | None:
    return None if self.budget_s is None else self._condition_share * self.budget_s

  def note_condition(self, report: dict) -> None:
    if report.get('training_stopped_by') == 'time_budget':
      self.notes.append(f'training cut at {report["training_steps"]} steps (time budget)')

  def _affordable(self) -> int:
    return int((self.deadline - time.perf_counter()) / self._per_candidate)

  def pool_size(self, wanted: int, count: int) -> int:
    """Candidates to draw: `wanted`, or what the remaining time affords at the last cost
    (never below `min_candidates` or `count`)."""
    if self.deadline is None or not self._per_candidate:
      return wanted
    affordable = self._affordable()
    n = max(self._min_candidates, count, affordable) if affordable < wanted else wanted
    if n < wanted:
      self.notes.append(f'candidates {wanted}->{n} (time budget)')
    return min(n, wanted)

  def probe_size(self, n: int) -> int:
    """How many of the n candidates to sample first: all, unless the cost is still unknown."""
    if self.deadline is None or self._per_candidate:
      return n
    return min(n, self._min_candidates)

  def after_probe(self, n: int, probed: int, seconds_per_candidate: float) -> int:
    """-> how many of the n candidates to keep, now that the probe measured the cost."""
    self._per_candidate = seconds_per_candidate
    if probed >= n:
      return n
    keep = probed + max(0, min(n - probed, self._affordable()))
    if keep < n:
      self.notes.append(f'candidates {n}->{keep} (time budget)')
    return keep

  @property
  def summary(self) -> str:
    return '; '.join(self.notes)
