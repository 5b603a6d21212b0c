"""y warps: order kept, ties, the log warp's shape, and the way back to the metric's units."""
import numpy as np
import pytest

from designers.warping import WARPS, YWarp

Y = np.asarray([0.9, 0.8, 0.9, 0.7, 0.9, 0.2])


def test_midrank_gives_tied_values_their_mean_rank():
  np.testing.assert_allclose(YWarp(maximize=True, kind='midrank').warp(Y[:5]),
                             [0.75, 0.25, 0.75, 0.0, 0.75])
  assert len(set(YWarp(maximize=True, kind='rank').warp(Y[:5]))) == 5  # order of arrival


def test_the_log_warp_spreads_the_values_near_the_best():
  z = YWarp(maximize=True, kind='log').warp(np.asarray([0.0, 0.5, 0.9, 0.99, 1.0]))
  assert np.all(np.diff(z) > 0)
  assert z[4] - z[3] > z[1] - z[0]  # the last hundredth counts more than the first half


@pytest.mark.parametrize('kind', WARPS)
@pytest.mark.parametrize('maximize', [True, False])
def test_warps_keep_the_order_and_unwarp_back_to_the_observed_values(kind, maximize):
  warp = YWarp(maximize=maximize, kind=kind)
  oriented = np.asarray([warp.orient(v) for v in [3.0, -1.0, 7.5, 2.0, 100.0]])
  z = warp.warp(oriented)
  assert np.array_equal(np.argsort(z, kind='stable'), np.argsort(oriented, kind='stable'))
  back = warp.unwarp(z, oriented)
  np.testing.assert_allclose(back, oriented, rtol=1e-9, atol=1e-9)


def test_the_half_rank_warp_keeps_the_better_half_and_tames_the_worse():
  y = -np.asarray([1e4, 300.0, 5.0, 2.0, 1.5, 1.2, 1.1, 1.05])  # minimised, oriented
  z = YWarp(maximize=True, kind='halfrank').warp(y)
  np.testing.assert_array_equal(z[4:], y[4:])  # the better half as it was
  assert np.all(np.diff(z) > 0)
  assert z[0] > y[4] - 3.0  # the outlier of 1e4 ends a few spreads below, not 1e4 below
