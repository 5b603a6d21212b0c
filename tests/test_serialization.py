import numpy as np
import pytest
from vizier import pyvizier as vz

from vizier_omnipred.serialization import NUMBER, TEXT, Featurizer, StudyInfo

ROW = {'learning_rate': 1e-3, 'dropout': 0.1, 'num_layers': 3, 'batch_size': 32,
       'optimizer': 'adam', 'use_bias': 'True'}


def test_every_parameter_type_becomes_one_item(mixed_problem):
  inputs = Featurizer(mixed_problem).featurize([ROW, dict(ROW, optimizer='sgd')])
  # 6 parameters + metadata items (metric, goal, title).
  assert inputs.mask.shape == (2, 9)
  kinds = dict(zip(sorted(ROW), inputs.kinds[0][:6]))
  assert kinds == {'batch_size': NUMBER, 'dropout': NUMBER, 'learning_rate': NUMBER,
                   'num_layers': NUMBER, 'optimizer': TEXT, 'use_bias': TEXT}
  assert not np.array_equal(inputs.texts[0], inputs.texts[1])  # category changed


def test_vizier_trials_and_dicts_give_the_same_features(mixed_problem):
  trial = vz.Trial(parameters=ROW)
  fz = Featurizer(mixed_problem)
  a, b = fz.featurize([trial]), fz.featurize([ROW])
  for name in ('names', 'numbers', 'texts', 'scalars', 'kinds'):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_bounds_are_not_part_of_the_input():
  def problem(lo, hi):
    p = vz.ProblemStatement()
    p.search_space.root.add_float_param('x', lo, hi)
    p.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MINIMIZE))
    return p
  a = Featurizer(problem(1, 5)).featurize([{'x': 2.0}])
  b = Featurizer(problem(0, 100)).featurize([{'x': 2.0}])
  for name in ('names', 'numbers', 'texts', 'scalars', 'kinds', 'mask'):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_parameter_order_does_not_matter(mixed_problem):
  fz = Featurizer(mixed_problem)
  reordered = dict(reversed(list(ROW.items())))
  np.testing.assert_array_equal(fz.featurize([ROW]).numbers, fz.featurize([reordered]).numbers)


def test_metadata_is_in_the_input(mixed_problem):
  info = StudyInfo.from_problem(mixed_problem)
  assert info == StudyInfo(title='mlp on mnist', metric_name='accuracy', goal='MAXIMIZE')
  other = StudyInfo(title='cnn on cifar', metric_name='accuracy', goal='MAXIMIZE')
  a = Featurizer(mixed_problem).featurize([ROW])
  b = Featurizer(mixed_problem, study=other).featurize([ROW])
  assert not np.array_equal(a.texts, b.texts)


@pytest.mark.parametrize('row, message', [
    ({k: v for k, v in ROW.items() if k != 'dropout'}, "parameter 'dropout' is missing"),
    (dict(ROW, momentum=0.9), "parameter 'momentum' is not in the search space"),
    (dict(ROW, optimizer='adamw'), "'optimizer' has value 'adamw', which is not one of its"),
    (dict(ROW, dropout=float('nan')), "'dropout' is nan; numbers must be finite"),
    (dict(ROW, dropout='high'), "'dropout' is numeric but got 'high'"),
])
def test_bad_rows_name_the_culprit(mixed_problem, row, message):
  with pytest.raises(ValueError, match=message):
    Featurizer(mixed_problem).featurize([ROW, row])


def test_error_names_the_row_index(mixed_problem):
  with pytest.raises(ValueError, match='Row 1:'):
    Featurizer(mixed_problem).featurize([ROW, dict(ROW, optimizer='nope')])


def test_conditional_search_space_is_rejected():
  p = vz.ProblemStatement()
  model = p.search_space.root.add_categorical_param('model', ['linear', 'dnn'])
  model.select_values(['dnn']).add_float_param('lr', 1e-4, 1e-1)
  with pytest.raises(ValueError, match='does not support conditional search spaces'):
    Featurizer(p)


def test_without_a_problem_types_are_inferred_and_names_checked():
  fz = Featurizer()
  inputs = fz.featurize([{'x': 1.5, 'kind': 'a'}, {'x': -2, 'kind': 'b'}])
  assert inputs.kinds[0, :2].tolist() == [TEXT, NUMBER]  # sorted names: kind, x
  with pytest.raises(ValueError, match="'y' is not in the first row"):
    fz.featurize([{'x': 1.0, 'kind': 'a', 'y': 2}])


def test_non_mapping_rows_are_rejected():
  with pytest.raises(TypeError, match='Expected a parameter mapping'):
    Featurizer().featurize([[1.0, 2.0]])
