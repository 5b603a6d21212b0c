"""Acquisitions: each picks its candidate, ties go to the median, bad input names the culprit,
and a new acquisition plugs into the designer as one class and nothing else."""

import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import acquisition
from designers.acquisition import AcquisitionContext
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig

# Candidate 0: high median, narrow. Candidate 1: low median, wide upper tail.
SAMPLES = np.array([
    [5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0],
    [1.0] * 10,
])


def _context(best: float, safe=None) -> AcquisitionContext:
  return AcquisitionContext(np.array([[best]]), np.random.default_rng(0), safe)


@pytest.mark.parametrize('chosen, best, winner', [
    (acquisition.UCB(), 0.0, 1),                   # the 0.9 quantile sees candidate 1's tail
    (acquisition.ExpectedImprovement(), 5.65, 1),  # E[max(y - 5.65, 0)]: 0.77 vs 0.045
    (acquisition.ProbabilityOfImprovement(), 5.65, 0),  # P(y > 5.65): 0.3 vs 0.2
    (acquisition.UCB(quantile=0.5), 0.0, 0),       # the median
])
def test_each_acquisition_picks_its_candidate(chosen, best, winner):
  scores = chosen(SAMPLES[:, :, None], _context(best))
  assert int(np.argmax(scores)) == winner


def test_raw_values():
  np.testing.assert_allclose(acquisition.expected_improvement(SAMPLES, best=5.65),
                             [0.045, 0.77, 0.0])
  np.testing.assert_allclose(acquisition.probability_of_improvement(SAMPLES, best=5.65),
                             [0.3, 0.2, 0.0])
  np.testing.assert_allclose(acquisition.ucb(SAMPLES, quantile=0.5), [5.45, 0.0, 1.0])


def test_ties_are_broken_by_the_median():
  scores = acquisition.ExpectedImprovement()(SAMPLES[[2, 0]][:, :, None] - 100, _context(0.0))
  assert scores[1] > scores[0]  # both EI = 0; candidate with the higher median wins


def test_thompson_draws_one_sample_per_candidate():
  draws = acquisition.thompson(SAMPLES, rng=np.random.default_rng(1))
  for row, d in zip(SAMPLES, draws):
    assert d in row


def test_ehvi_prefers_the_candidate_beyond_the_front():
  observed = np.array([[0.0, 1.0], [1.0, 0.0]])
  samples = np.stack([np.full((4, 2), 0.4), np.full((4, 2), 0.9)])  # inside / beyond
  scores = acquisition.ExpectedHypervolumeImprovement()(
      samples, AcquisitionContext(observed, np.random.default_rng(0)))
  assert scores[1] > scores[0]


def test_safety_weighting_ranks_a_safe_candidate_above_a_better_unsafe_one():
  weighted = acquisition.SafetyWeighted(acquisition.UCB())
  scores = weighted(SAMPLES[:, :, None], _context(0.0, safe=lambda: np.array([1.0, 0.0, 1.0])))
  assert int(np.argmax(scores)) == 0 and weighted.name == 'ucb x P(safe)'


@pytest.mark.parametrize('chosen, samples, message', [
    ('magic', None, "Unknown acquisition 'magic'"),
    (acquisition.UCB(), np.zeros(3), r'samples must be \[n_candidates, n_samples, n_objectives\]'),
    (acquisition.Thompson(), np.zeros((3, 4, 2)), 'Thompson sampling scores one objective'),
])
def test_bad_arguments_name_the_culprit(chosen, samples, message):
  with pytest.raises(ValueError, match=message):
    acquisition.resolve(chosen)(samples, _context(0.0))


def test_a_one_objective_acquisition_is_refused_for_several_at_construction():
  with pytest.raises(ValueError, match="Acquisition 'ei' scores 1 objective"):
    acquisition.for_problem(acquisition.resolve('ei'), 2, has_safety=False)


class Lowest:
  """A test acquisition: the LOWEST median wins (the opposite of any sensible one)."""

  name = 'lowest'

  def __call__(self, samples, context):
    return -np.median(samples, axis=1).sum(axis=1)


class Line:
  """A surrogate that predicts y = x exactly."""

  def condition(self, parameters, y, **_):
    return {}

  def sample(self, parameters, num_samples, *, seed):
    x = np.asarray([p['x'].value for p in parameters])
    return np.repeat(x[:, None], num_samples, axis=1)


def test_a_new_acquisition_plugs_into_the_designer_with_no_other_change():
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, acquisition=Lowest())
  designer = OmniPredDesigner(problem, seed=0, config=config, surrogate=Line())
  for i in range(4):
    (s,) = designer.suggest(1)
    t = s.to_trial(i + 1)
    t.complete(vz.Measurement({'y': t.parameters['x'].value}))
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  (s,) = designer.suggest(1)
  md = s.metadata.ns('omnipred')
  assert md['acquisition'] == 'lowest' and md['phase'] == 'model'
  assert s.parameters['x'].value < 0.2  # the acquisition, not UCB, chose it
