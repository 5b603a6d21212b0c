"""Checking and sampling trials of conditional search spaces (Vizier's own check refuses
them)."""

import numpy as np
import pytest
from vizier import pyvizier as vz

from tests.conftest import expected_active
from vizier_omnipred import search_space


def test_random_configurations_are_valid_and_reach_every_branch(conditional_problem):
  space = conditional_problem.search_space
  rng = np.random.default_rng(0)
  rows = [search_space.random_parameters(space, rng) for _ in range(300)]
  for row in rows:
    assert set(row) == expected_active(row)
    assert search_space.is_valid(space, row)
  assert {r.get('kernel') for r in rows} == {None, 'rbf', 'linear', 'poly'}


@pytest.mark.parametrize('row, message', [
    ({'learning_rate': 0.01, 'model': 'svm', 'C': 1.0}, "'kernel' is missing"),
    ({'learning_rate': 0.01, 'model': 'forest', 'depth': 3, 'C': 1.0},
     "'C' is set, but its parent does not select it here .*one of \\['svm'\\]"),
    ({'learning_rate': 0.01, 'model': 'forest', 'depth': 30}, "'depth' has value 30, outside"),
    ({'learning_rate': 0.01, 'model': 'tree'}, "'model' has value 'tree', which is not one"),
    ({'learning_rate': 0.01, 'model': 'forest', 'depth': 3, 'seed': 1},
     "'seed' is not in the search space"),
    ({'learning_rate': float('nan'), 'model': 'forest', 'depth': 3}, "is nan"),
])
def test_invalid_configurations_name_the_culprit(conditional_problem, row, message):
  with pytest.raises(ValueError, match=message):
    search_space.check_parameters(conditional_problem.search_space, row)
  assert not search_space.is_valid(conditional_problem.search_space, row)


def test_vizier_parameter_dicts_and_service_floats_are_accepted(conditional_problem):
  params = vz.ParameterDict({'learning_rate': 0.01, 'model': 'svm', 'C': 1.0,
                             'kernel': 'poly', 'degree': 3.0})
  search_space.check_parameters(conditional_problem.search_space, params)


def test_duplicate_names_across_branches_are_refused():
  p = vz.ProblemStatement()
  model = p.search_space.root.add_categorical_param('model', ['a', 'b'])
  model.select_values(['a']).add_float_param('lr', 0.1, 1.0)
  model.select_values(['b']).add_float_param('lr', 0.1, 2.0)
  with pytest.raises(ValueError, match="'lr' appears twice"):
    search_space.all_parameters(p.search_space)


def test_nested_conditional_spaces_survive_the_wire(conditional_problem):
  # google-vizier 0.1.24 drops grandchildren (here gamma, degree) in the study-config proto;
  # designers.vizier_fixes.apply() mends it.
  from designers import vizier_fixes  # pylint: disable=g-import-not-at-top
  from vizier.service import pyvizier as svz  # pylint: disable=g-import-not-at-top
  vizier_fixes.apply()
  config = svz.StudyConfig.from_problem(conditional_problem)
  back = svz.StudyConfig.from_proto(config.to_proto()).to_problem()
  assert (sorted(search_space.all_parameters(back.search_space))
          == sorted(search_space.all_parameters(conditional_problem.search_space)))
  assert list(back.search_space.get('model').subspace('svm').get('kernel').subspace(
      'poly').get('degree').matching_parent_values) == ['poly']
