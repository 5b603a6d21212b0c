import numpy as np
import pytest
from vizier import pyvizier as vz
from vizier._src.benchmarks.experimenters.synthetic import bbob

from vizier_omnipred.pretraining import bbob_rotations
from vizier_omnipred.pretraining.corpus import (
    BBOB_FUNCTIONS, HELD_OUT_FUNCTIONS, TRAIN_FUNCTIONS, CorpusConfig, SyntheticStudy,
    iterate_studies)


def test_a_seed_determines_the_study_and_its_trials():
  a, b = SyntheticStudy(11), SyntheticStudy(11)
  assert a.problem == b.problem and a.function_name == b.function_name
  ra = a.sample_parameters(8, np.random.default_rng(0))
  assert ra == b.sample_parameters(8, np.random.default_rng(0))
  np.testing.assert_array_equal(a.evaluate(ra), b.evaluate(ra))


def test_splits_use_disjoint_functions():
  assert set(HELD_OUT_FUNCTIONS) | set(TRAIN_FUNCTIONS) == set(BBOB_FUNCTIONS)
  assert not set(HELD_OUT_FUNCTIONS) & set(TRAIN_FUNCTIONS)
  train = {s.function_name for s, _ in zip(iterate_studies(0), range(200))}
  held = {s.function_name for s, _ in zip(iterate_studies(0, split='eval'), range(60))}
  assert train <= set(TRAIN_FUNCTIONS) and held <= set(HELD_OUT_FUNCTIONS)


def test_studies_cover_every_parameter_type_both_goals_and_many_scales():
  types, goals, spans = set(), set(), []
  for study, _ in zip(iterate_studies(3), range(150)):
    for pc in study.problem.search_space.parameters:
      types.add((pc.type, pc.scale_type if pc.type == vz.ParameterType.DOUBLE else None))
    goals.add(study.problem.metric_information.item().goal)
    rows = study.sample_parameters(16, np.random.default_rng(0))
    y = study.evaluate(rows)
    assert np.all(np.isfinite(y))
    spans.append(np.abs(y).max())
  assert {(vz.ParameterType.DOUBLE, vz.ScaleType.LOG), (vz.ParameterType.INTEGER, None),
          (vz.ParameterType.DISCRETE, None), (vz.ParameterType.CATEGORICAL, None)} <= types
  assert len(goals) == 2
  assert np.log10(max(spans) / min(spans)) > 4  # y across many orders of magnitude
  assert any(s.dim >= 8 for s, _ in zip(iterate_studies(5), range(200)))


def test_categories_change_the_objective():
  for study, _ in zip(iterate_studies(7), range(300)):
    cats = [pc for pc in study.problem.search_space.parameters
            if pc.type == vz.ParameterType.CATEGORICAL]
    if cats and study.dim == 1:
      rows = [{cats[0].name: v} for v in cats[0].feasible_values]
      assert np.ptp(study.evaluate(rows)) > 0
      return
  pytest.fail('no one-parameter categorical study in 300 draws')


def test_recurring_study_has_fixed_targets():
  study = SyntheticStudy(5, CorpusConfig(noise_fraction=0.0))
  rows = study.sample_parameters(4, np.random.default_rng(1))
  np.testing.assert_array_equal(study.evaluate(rows), SyntheticStudy(5).evaluate(rows))
  lo, hi = study.y_range
  assert lo < hi


def test_bad_split_is_rejected():
  with pytest.raises(ValueError, match="split must be 'train' or 'eval'"):
    SyntheticStudy(0, split='test')


def test_gp_prior_draws_have_the_kernel_s_smoothness():
  """Nearby points are close for a long length scale and not for a short one."""
  from vizier_omnipred.pretraining.gp_prior import GPFunction
  u = np.linspace(0, 1, 200)[:, None]
  rng = np.random.default_rng(0)
  rough = []
  for scale in (0.02, 1.0):
    fn = GPFunction(kernel='matern52', length_scales=np.array([scale]), noise=0.0, warp_a=None,
                    warp_b=None, jitter=1e-6)
    f = fn.sample(u, rng)
    rough.append(np.mean(np.abs(np.diff(f))) / (np.std(f) + 1e-12))
  assert rough[0] > 5 * rough[1]


def test_gp_prior_ignores_unused_dimensions():
  from vizier_omnipred.pretraining.gp_prior import GPFunction
  fn = GPFunction(kernel='rbf', length_scales=np.array([0.3, np.inf]), noise=0.0, warp_a=None,
                  warp_b=None, jitter=1e-6)
  u = np.array([[0.2, 0.0], [0.2, 1.0], [0.9, 0.5]])
  k = fn.covariance(u)
  assert k[0, 1] == pytest.approx(1.0) and k[0, 2] < 0.2


def test_gp_prior_survives_repeated_points():
  from vizier_omnipred.pretraining.gp_prior import GPFunction
  fn = GPFunction(kernel='rbf', length_scales=np.array([5.0]), noise=0.0, warp_a=None,
                  warp_b=None, jitter=0.0)
  f = fn.sample(np.zeros((30, 1)), np.random.default_rng(0))
  assert np.all(np.isfinite(f)) and np.ptp(f) < 1e-6  # one point, one value


def test_gp_prior_length_scales_can_grow_with_dimension():
  """With the sqrt(d) option an 8-D draw has the same kernel and unused dimensions as without
  it (the same random numbers), its length scales sqrt(8) times longer, and a 1-D draw is
  unchanged; by default nothing moves."""
  from vizier_omnipred.pretraining.gp_prior import GPFunction, GPPriorConfig
  scaled = GPPriorConfig(length_scale_dim_exponent=0.5)
  for dim in (1, 8):
    plain = GPFunction.draw(dim, np.random.default_rng(dim))
    longer = GPFunction.draw(dim, np.random.default_rng(dim), scaled)
    assert longer.kernel == plain.kernel
    np.testing.assert_array_equal(np.isinf(longer.length_scales), np.isinf(plain.length_scales))
    used = np.isfinite(plain.length_scales)
    np.testing.assert_allclose(longer.length_scales[used] / plain.length_scales[used],
                               np.sqrt(dim))
  assert GPPriorConfig().length_scale_dim_exponent == 0.0


def test_in_context_corpus_mixes_objective_kinds_and_draws_new_functions():
  from vizier_omnipred.pretraining.corpus import IN_CONTEXT_CORPUS
  kinds = {SyntheticStudy(s, IN_CONTEXT_CORPUS).objective for s in range(60)}
  assert kinds == {'bbob', 'gp', 'sum', 'product'}
  gp = next(SyntheticStudy(s, IN_CONTEXT_CORPUS) for s in range(60)
            if SyntheticStudy(s, IN_CONTEXT_CORPUS).objective == 'gp')
  rows, y = gp.draw(20, np.random.default_rng(0))
  assert len(rows) == 20 and np.all(np.isfinite(y)) and np.ptp(y) > 0
  with pytest.raises(ValueError, match="is a 'gp' objective"):
    gp.evaluate(rows)
  # The held-out split's BBOB parts use only held-out functions.
  held = [SyntheticStudy(s, IN_CONTEXT_CORPUS, split='eval') for s in range(40)]
  assert {s.function_name for s in held} <= set(HELD_OUT_FUNCTIONS)


def test_multi_output_studies_carry_other_metrics_correlated_as_drawn():
  from vizier_omnipred.pretraining.corpus import IN_CONTEXT_CORPUS
  from vizier_omnipred.pretraining.multi_output_prior import MultiOutputStudy
  from vizier_omnipred.serialization import Featurizer
  signs, missing = [], 0
  for seed in range(40):
    study = MultiOutputStudy(seed, IN_CONTEXT_CORPUS)
    names = study.metric_inputs
    assert 1 <= len(names) <= 2
    objectives = [m.name for m in study.problem.metric_information]
    assert objectives[1:] == list(names) and objectives[0] not in names
    rows, y = study.draw(60, np.random.default_rng(seed))
    again, y_again = MultiOutputStudy(seed, IN_CONTEXT_CORPUS).draw(60, np.random.default_rng(seed))
    np.testing.assert_array_equal(y, y_again)
    assert [r.keys() for r in rows] == [r.keys() for r in again]
    other = np.asarray([r[names[0]] for r in rows])
    missing += int(np.isnan(other).sum())
    ok = np.isfinite(other)
    rho = study._rho[0] * np.sign(study._scale[0])
    if abs(rho) > 0.9 and not study._log_warp[0]:  # a near-deterministic link shows its sign
      signs.append(np.sign(np.corrcoef(other[ok], y[ok])[0, 1]) == np.sign(rho))
    inputs = Featurizer(study.problem, metric_inputs=names).featurize(rows)
    np.testing.assert_array_equal(inputs.mask[:, -len(names)][~ok], False)
  assert signs and all(signs)
  assert missing > 0


def test_bbob_rotations_are_drawn_once_and_equal_vizier_draws():
  bbob_rotations.install()  # corpus installs it on import; a second install changes nothing
  rotation = bbob._R  # pylint: disable=protected-access
  first = rotation(4, 12345, b'R')
  np.testing.assert_array_equal(first, rotation.uncached(4, 12345, b'R'))
  assert rotation(4, 12345, b'R') is first  # drawn once
  assert not np.array_equal(rotation(4, 12345, b'Q'), first)
  with pytest.raises(ValueError, match='read-only'):
    first[0, 0] = 0.0  # no caller can change a cached matrix
  # A function reads the same rotation it always drew: same values with and without the memo.
  x = np.linspace(-4.0, 4.0, 4)
  cached = bbob.Rastrigin(x.copy(), seed=7)
  bbob._R = rotation.uncached  # pylint: disable=protected-access
  try:
    assert bbob.Rastrigin(x.copy(), seed=7) == cached
  finally:
    bbob._R = rotation  # pylint: disable=protected-access


def test_gp_prior_sparse_relevance_keeps_one_to_half_of_the_dimensions():
  """With the sparse share at 1 every draw depends on 1..dim // 2 dimensions (1-D draws keep
  theirs); at the default 0 the draws are those of the shipped stages (no extra random
  number is taken)."""
  from vizier_omnipred.pretraining.gp_prior import GPFunction, GPPriorConfig
  sparse = GPPriorConfig(sparse_relevance_probability=1.0)
  counts = {dim: set() for dim in (1, 2, 4, 8)}
  for dim in counts:
    for seed in range(40):
      used = int(np.isfinite(GPFunction.draw(dim, np.random.default_rng(seed), sparse)
                             .length_scales).sum())
      assert 1 <= used <= max(1, dim // 2)
      counts[dim].add(used)
  assert counts[8] == {1, 2, 3, 4} and counts[2] == {1}
  default = GPFunction.draw(6, np.random.default_rng(3))
  explicit_zero = GPFunction.draw(6, np.random.default_rng(3),
                                  GPPriorConfig(sparse_relevance_probability=0.0))
  np.testing.assert_array_equal(default.length_scales, explicit_zero.length_scales)
  assert default.noise == explicit_zero.noise


def test_a_zooming_study_closes_in_on_its_optimum_and_other_corpora_are_unchanged():
  config = CorpusConfig(clustered_fraction=1.0, zoom_fraction=1.0)
  zooming = SyntheticStudy(3, config)
  assert zooming.zooms
  rng = np.random.default_rng(0)
  gap = np.abs(zooming.coordinates(zooming.sample_parameters(400, rng)) - zooming.shift)
  plain = SyntheticStudy(3, CorpusConfig(clustered_fraction=1.0))
  plain_gap = np.abs(plain.coordinates(plain.sample_parameters(400, rng)) - plain.shift)
  # Spreads down to 1e-3 of [-5, 5]: a quarter of the zooming study's trials lie within 0.01
  # of the optimum in every coordinate; the plain clusters (centres 1 off) have almost none.
  assert np.mean(gap.max(axis=1) < 0.01) > 0.2 > np.mean(plain_gap.max(axis=1) < 0.01)
  # zoom_fraction=0 draws nothing more: the default corpus keeps its seeds' studies.
  assert not plain.zooms and plain.parameter_names == SyntheticStudy(
      3, CorpusConfig(clustered_fraction=1.0, zoom_fraction=0.0)).parameter_names
