"""Hypervolume and its expected improvement against brute-force definitions."""

import numpy as np
import pytest

from designers import hypervolume as hv


def test_hypervolume_of_known_fronts():
  ref = np.zeros(2)
  assert hv.hypervolume(np.array([[1.0, 1.0]]), ref) == pytest.approx(1.0)
  # Two boxes [0,2]x[0,1] and [0,1]x[0,2] overlap in the unit square: 2 + 2 - 1.
  assert hv.hypervolume(np.array([[2.0, 1.0], [1.0, 2.0]]), ref) == pytest.approx(3.0)
  # A dominated point and a point below the reference add nothing.
  assert hv.hypervolume(np.array([[2.0, 1.0], [1.0, 2.0], [0.5, 0.5], [-1.0, 5.0]]),
                        ref) == pytest.approx(3.0)
  cube = np.array([[1.0, 1.0, 1.0]])
  assert hv.hypervolume(cube, np.zeros(3)) == pytest.approx(1.0)


def test_hypervolume_matches_a_grid_count_in_3d():
  rng = np.random.default_rng(0)
  points = rng.random((12, 3))
  g = (np.arange(60) + 0.5) / 60
  grid = np.stack(np.meshgrid(g, g, g, indexing='ij'), -1).reshape(-1, 3)
  covered = np.any(np.all(points[None] >= grid[:, None], axis=2), axis=1).mean()
  assert hv.hypervolume(points, np.zeros(3)) == pytest.approx(covered, abs=0.01)


def test_pareto_mask():
  points = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [1.0, 0.0]])
  assert hv.pareto_mask(points).tolist() == [True, True, True, False, False]


def test_two_objective_improvement_is_exact():
  rng = np.random.default_rng(1)
  front = rng.random((6, 2))
  front = front[hv.pareto_mask(front)]
  ref = np.array([-0.1, -0.1])
  samples = rng.random((20, 3, 2)) * 1.2 - 0.1
  got = hv.expected_improvement(samples, front, ref)
  base = hv.hypervolume(front, ref)
  want = np.array([[hv.hypervolume(np.vstack([front, p]), ref) - base for p in cand]
                   for cand in samples]).mean(axis=1)
  np.testing.assert_allclose(got, want, atol=1e-12)
  # With no front, the improvement is the box above the reference.
  np.testing.assert_allclose(hv.expected_improvement(samples[:, :1], np.zeros((0, 2)), ref),
                             np.prod(np.clip(samples[:, 0] - ref, 0, None), axis=1))


def test_three_objective_improvement_is_close_and_orders_candidates():
  rng = np.random.default_rng(2)
  front = rng.random((8, 3))
  front = front[hv.pareto_mask(front)]
  ref = np.zeros(3)
  samples = rng.random((10, 1, 3)) * 1.3
  got = hv.expected_improvement(samples, front, ref, rng=np.random.default_rng(0))
  base = hv.hypervolume(front, ref)
  want = np.array([hv.hypervolume(np.vstack([front, c[0]]), ref) - base for c in samples])
  np.testing.assert_allclose(got, want, atol=0.03)
  ranks = lambda v: np.argsort(np.argsort(v))
  assert np.corrcoef(ranks(got), ranks(want))[0, 1] > 0.95
