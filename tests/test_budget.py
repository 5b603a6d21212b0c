import pytest

from designers.budget import SuggestionClock


def test_no_budget_cuts_nothing():
  clock = SuggestionClock(None, condition_share=0.6, min_candidates=16, seconds_per_candidate=1.0)
  assert clock.condition_budget_s is None
  assert clock.pool_size(512, 1) == 512 and clock.probe_size(512) == 512
  assert clock.after_probe(512, 512, 1.0) == 512 and clock.notes == []


def test_a_known_cost_sizes_the_pool_and_says_so():
  clock = SuggestionClock(1.0, condition_share=0.6, min_candidates=16,
                          seconds_per_candidate=0.01)
  assert clock.condition_budget_s == pytest.approx(0.6)
  n = clock.pool_size(512, 1)
  assert 16 <= n <= 100 and clock.probe_size(n) == n  # ~1 s / 0.01 s, never below the floor
  assert clock.notes == [f'candidates 512->{n} (time budget)']


def test_an_unknown_cost_probes_first_then_keeps_what_the_clock_affords():
  clock = SuggestionClock(0.0, condition_share=0.6, min_candidates=16, seconds_per_candidate=None)
  assert clock.pool_size(512, 1) == 512  # nothing measured yet
  assert clock.probe_size(512) == 16
  assert clock.after_probe(512, 16, 0.01) == 16  # the budget is already spent
  clock.note_condition({'training_stopped_by': 'time_budget', 'training_steps': 3})
  assert clock.summary == 'candidates 512->16 (time budget); training cut at 3 steps (time budget)'


def test_the_floor_holds_the_requested_count():
  clock = SuggestionClock(0.0, condition_share=0.6, min_candidates=16, seconds_per_candidate=1.0)
  assert clock.pool_size(512, 40) == 40
