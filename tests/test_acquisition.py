import numpy as np
import pytest

from designers import acquisition

# Candidate 0: high median, narrow. Candidate 1: low median, wide upper tail.
SAMPLES = np.array([
    [5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0],
    [1.0] * 10,
])


@pytest.mark.parametrize('name, best, winner', [
    ('ucb', 0.0, 1),   # the 0.9 quantile sees candidate 1's tail
    ('ei', 5.65, 1),   # E[max(y - 5.65, 0)]: 0.77 vs 0.045
    ('pi', 5.65, 0),   # P(y > 5.65): 0.3 vs 0.2
])
def test_each_acquisition_picks_its_candidate(name, best, winner):
  scores = acquisition.score(name, SAMPLES, best=best, rng=np.random.default_rng(0))
  assert int(np.argmax(scores)) == winner


def test_raw_values():
  np.testing.assert_allclose(acquisition.expected_improvement(SAMPLES, best=5.65), [0.045, 0.77, 0.0])
  np.testing.assert_allclose(acquisition.probability_of_improvement(SAMPLES, best=5.65), [0.3, 0.2, 0.0])
  np.testing.assert_allclose(acquisition.ucb(SAMPLES, quantile=0.5), [5.45, 0.0, 1.0])


def test_ties_are_broken_by_the_median():
  scores = acquisition.score('ei', SAMPLES[[2, 0]] - 100, best=0.0, rng=np.random.default_rng(0))
  assert scores[1] > scores[0]  # both EI = 0; candidate with the higher median wins


def test_thompson_draws_one_sample_per_candidate():
  draws = acquisition.thompson(SAMPLES, rng=np.random.default_rng(1))
  for row, d in zip(SAMPLES, draws):
    assert d in row


@pytest.mark.parametrize('name, samples, message', [
    ('magic', SAMPLES, "Unknown acquisition 'magic'"),
    ('ucb', np.zeros(3), r'samples must be \[n_candidates, n_samples\]'),
])
def test_bad_arguments(name, samples, message):
  with pytest.raises(ValueError, match=message):
    acquisition.score(name, samples, best=0.0, rng=np.random.default_rng(0))
