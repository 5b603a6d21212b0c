import numpy as np
import pytest
from vizier import pyvizier as vz

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
