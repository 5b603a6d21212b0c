"""The acquisition search: it improves on its pool, handles every parameter type, respects
-inf, and plugs into the designer through any surrogate (exact quantiles or draws)."""

import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers.acquisition_search import AcquisitionSearchConfig, EvolutionarySearch, search
from designers.candidates import CONTINUOUS, CandidateSpace
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig

SMALL = AcquisitionSearchConfig(generations=3, children=64, parents=8, finalists=16)


def _mixed_space() -> vz.SearchSpace:
  space = vz.SearchSpace()
  space.root.add_float_param('x', 0.0, 1.0)
  space.root.add_float_param('lr', 1e-5, 1.0, scale_type=vz.ScaleType.LOG)
  space.root.add_int_param('depth', 1, 20)
  space.root.add_categorical_param('kind', ['a', 'b', 'c', 'd'])
  return space


def _score_of(space: CandidateSpace):
  """Best at x = 0.37, lr = 1e-3, depth = 7, kind = 'c' (a score in the unit cube)."""
  target = space.to_unit([vz.TrialSuggestion(
      {'x': 0.37, 'lr': 1e-3, 'depth': 7, 'kind': 'c'})])[0]
  return lambda unit: -np.sum((unit - target) ** 2, axis=1), target


def test_the_search_improves_on_its_pool_in_a_mixed_space():
  space = CandidateSpace(_mixed_space(), seed=0)
  score, target = _score_of(space)
  pool = space.quasi_random(64)
  found = search(space, pool, score, radius=0.15, rng=np.random.default_rng(0), config=SMALL)
  assert found.inner[0] > score(pool).max()
  assert np.all(np.diff(found.inner) <= 0)  # best first
  assert len(found.finalists) == SMALL.finalists
  assert 64 < found.evaluated <= 64 + SMALL.generations * SMALL.children
  best = space.to_parameters(found.finalists[:1])[0]
  assert best['kind'].value == 'c' and abs(best['depth'].value - 7) <= 2


def test_the_search_is_reproducible_and_uses_carried_parents():
  space = CandidateSpace(_mixed_space(), seed=0)
  score, target = _score_of(space)
  pool = space.quasi_random(32)
  runs = [search(space, pool, score, radius=0.15, rng=np.random.default_rng(3), config=SMALL)
          for _ in range(2)]
  np.testing.assert_array_equal(runs[0].finalists, runs[1].finalists)
  carried = search(space, pool, score, radius=0.15, rng=np.random.default_rng(3), config=SMALL,
                   carried=target[None, :])
  np.testing.assert_allclose(carried.finalists[0], space.snap(target[None, :])[0])


def test_minus_infinity_is_never_a_parent_and_an_all_failed_pool_ends_the_search():
  space = CandidateSpace(_mixed_space(), seed=0)
  pool = space.quasi_random(32)
  calls = []

  def nowhere(unit):
    calls.append(len(unit))
    return np.full(len(unit), -np.inf)
  found = search(space, pool, nowhere, radius=0.15, rng=np.random.default_rng(0), config=SMALL)
  assert calls == [32] and found.evaluated == 32 and len(found.finalists) == SMALL.finalists


def test_a_continuous_search_keeps_the_pools_discrete_choices():
  space = CandidateSpace(_mixed_space(), seed=0)
  score, _ = _score_of(space)
  pool = space.quasi_random(64)
  config = AcquisitionSearchConfig(generations=3, children=64, parents=8, finalists=16,
                                   moves='continuous')
  found = search(space, pool, score, radius=0.15, rng=np.random.default_rng(0), config=config)
  assert found.inner[0] > score(pool).max()
  discrete = space.kinds != CONTINUOUS  # depth and kind
  pool_choices = {tuple(row) for row in np.round(pool[:, discrete], 12)}
  assert {tuple(row) for row in np.round(found.finalists[:, discrete], 12)} <= pool_choices
  # A move keeps its centre's discrete choices and changes at least one continuous coordinate.
  centres = pool[:4]
  moved = space.local(centres, 200, 0.15, np.random.default_rng(1), movable=~discrete)
  same_choices = (moved[:, None, discrete] == centres[None, :, discrete]).all(-1)
  same_numbers = (moved[:, None, ~discrete] == centres[None, :, ~discrete]).all(-1)
  assert same_choices.any(1).all() and not (same_choices & same_numbers).any()


def test_a_continuous_search_of_a_space_without_doubles_ranks_the_pool():
  space = vz.SearchSpace()
  space.root.add_int_param('depth', 1, 20)
  space.root.add_categorical_param('kind', ['a', 'b'])
  candidates = CandidateSpace(space, seed=0)
  pool = candidates.quasi_random(16)
  calls = []
  optimizer = EvolutionarySearch(AcquisitionSearchConfig(moves='continuous'))
  proposal = optimizer.propose(
      candidates, pool, lambda unit, level: calls.append(len(unit)) or -unit.sum(1),
      radius=0.15, rng=np.random.default_rng(0), min_candidates=4, carried=pool[:0])
  np.testing.assert_array_equal(proposal.candidates, pool)
  assert proposal.evaluated == 0 and not calls
  with pytest.raises(ValueError, match='movable coordinate'):
    candidates.local(pool, 4, 0.15, np.random.default_rng(0), movable=np.zeros(2, bool))


@pytest.mark.parametrize('field, value, message', [
    ('inner_level', 1.0, 'inner_level must be in'), ('generations', -1, "'generations' must be"),
    ('finalists', 0, "'finalists' must be"), ('moves', 'discrete', "'moves' must be in")])
def test_bad_search_configs_name_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    AcquisitionSearchConfig(**{field: value})


class Bowl:
  """A surrogate that knows -(x - 0.3)^2; with `exact`, it has a quantiles method too."""

  def __init__(self, exact: bool):
    self.quantile_calls = 0
    if exact:
      self.quantiles = self._quantiles

  def condition(self, parameters, y, *, time_budget_s=None):
    return {'training_steps': 0}

  def _mean(self, parameters):
    return -(np.asarray([p['x'].value for p in parameters]) - 0.3) ** 2

  def sample(self, parameters, num_samples, *, seed):
    return np.repeat(self._mean(parameters)[:, None], num_samples, axis=1)

  def _quantiles(self, parameters, levels):
    self.quantile_calls += 1
    return np.repeat(self._mean(parameters)[:, None], len(levels), axis=1)


@pytest.mark.parametrize('exact', [True, False], ids=['exact_quantiles', 'from_draws'])
def test_the_designer_searches_through_any_surrogate(exact):
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.metric_information.append(
      vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  surrogate = Bowl(exact)
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=32, num_samples=4,
                                  optimizer=EvolutionarySearch(SMALL))
  designer = OmniPredDesigner(problem, seed=0, config=config, surrogate=surrogate)
  for i in range(4):
    (s,) = designer.suggest(1)
    t = s.to_trial(i + 1)
    t.complete(vz.Measurement({'y': -(t.parameters['x'].value - 0.3) ** 2}))
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  (s,) = designer.suggest(1)
  assert abs(s.parameters['x'].value - 0.3) < 0.01
  assert int(s.metadata.ns('omnipred')['searched_candidates']) > 32
  assert (surrogate.quantile_calls > 0) == exact
