import numpy as np
import pytest
from vizier import pyvizier as vz

from designers.candidates import CATEGORICAL, CONTINUOUS, ORDINAL, CandidateSpace, parameter_key
from designers.trust_region import TrustRegion, TrustRegionConfig
from tests.conftest import expected_active
from vizier_omnipred import search_space


def test_kinds_sizes_and_exact_round_trip(mixed_problem):
  space = CandidateSpace(mixed_problem.search_space, seed=0)
  kinds = dict(zip(space.names, space.kinds))
  assert kinds == {'learning_rate': CONTINUOUS, 'dropout': CONTINUOUS, 'num_layers': ORDINAL,
                   'batch_size': ORDINAL, 'optimizer': CATEGORICAL, 'use_bias': CATEGORICAL}
  unit = space.quasi_random(50)
  params = space.to_parameters(unit)
  np.testing.assert_allclose(space.to_unit([vz.TrialSuggestion(p) for p in params]), unit,
                             atol=1e-12)
  for p in params:
    assert mixed_problem.search_space.contains(p)


def test_log_parameters_are_scaled_in_log_space(mixed_problem):
  space = CandidateSpace(mixed_problem.search_space)
  centre = space.to_parameters(space.centre())[0]
  np.testing.assert_allclose(centre['learning_rate'].value, 10 ** -3, rtol=1e-9)


def test_local_moves_stay_near_and_move_something(mixed_problem):
  space = CandidateSpace(mixed_problem.search_space)
  centre = space.centre()
  moves = space.local(centre, 200, 0.05, np.random.default_rng(0))
  assert np.all((moves != centre).any(axis=1))
  cont = space.kinds == CONTINUOUS
  assert np.abs(moves[:, cont] - centre[:, cont]).max() < 0.4


def test_local_moves_at_several_scales_reach_closer_to_the_centre(mixed_problem):
  space = CandidateSpace(mixed_problem.search_space)
  centre = space.centre()
  cont = space.kinds == CONTINUOUS

  def median_step(min_scale):
    moves = space.local(centre, 2000, 0.15, np.random.default_rng(0), min_scale=min_scale)
    step = np.abs(moves[:, cont] - centre[:, cont])
    return np.median(step[step > 0])

  assert median_step(1 / 30) < 0.5 * median_step(1.0)
  with pytest.raises(ValueError, match='min_scale'):
    TrustRegionConfig(min_scale=0.0)
  with pytest.raises(ValueError, match='min_scale'):
    TrustRegionConfig(min_scale=1.5)


def test_parameter_key_treats_service_floats_as_integers():
  assert parameter_key({'n': 3, 'c': 'a'}) == parameter_key({'n': 3.0, 'c': 'a'})
  assert parameter_key({'x': 0.1}) != parameter_key({'x': 0.1000001})


def test_empty_search_space_is_rejected():
  with pytest.raises(ValueError, match='at least one parameter'):
    CandidateSpace(vz.SearchSpace())


def test_trust_region_grows_shrinks_and_restarts():
  cfg = TrustRegionConfig(initial_radius=0.1, min_radius=0.02, max_radius=0.3,
                          success_tolerance=2, failure_tolerance=2, adaptive=True)
  tr = TrustRegion(cfg)
  for _ in range(4):
    tr.observe(True)
  assert tr.radius == pytest.approx(0.3)  # 0.1 -> 0.2 -> 0.3 (capped)
  for _ in range(8):
    tr.observe(False)
  # 0.3 -> 0.15 -> 0.075 -> 0.0375 -> 0.01875 < min: restart at 0.1
  assert tr.radius == pytest.approx(0.1)


def test_trust_region_radius_is_fixed_by_default():
  tr = TrustRegion(TrustRegionConfig(initial_radius=0.2))
  for improved in [True] * 5 + [False] * 10:
    tr.observe(improved)
  assert tr.radius == 0.2


def test_conditional_candidates_are_valid_and_round_trip(conditional_problem):
  space = CandidateSpace(conditional_problem.search_space, seed=0)
  assert sorted(space.names) == sorted(
      ['learning_rate', 'model', 'l2', 'C', 'kernel', 'degree', 'gamma', 'depth'])
  unit = np.concatenate([space.quasi_random(200),
                         space.local(space.quasi_random(3), 200, 0.2, np.random.default_rng(1))])
  params = space.to_parameters(unit)
  for p in params:
    assert set(p) == expected_active(p)
    search_space.check_parameters(conditional_problem.search_space, p)
  # Every branch and nested choice is reached.
  assert {p['model'].value for p in params} == {'linear', 'svm', 'forest'}
  assert {p['kernel'].value for p in params if 'kernel' in p} == {'rbf', 'linear', 'poly'}
  # Active coordinates survive a round trip; inactive ones sit at their axis' centre.
  back = space.to_unit([vz.TrialSuggestion(p) for p in params])
  snapped = space.snap(unit)
  for i, p in enumerate(params):
    for j, name in enumerate(space.names):
      if name in p:
        assert back[i, j] == pytest.approx(snapped[i, j], abs=1e-9)
      else:
        assert back[i, j] == space.snap(np.full((1, space.dim), 0.5))[0, j]
