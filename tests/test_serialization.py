import numpy as np
import pytest
from vizier import pyvizier as vz

from vizier_omnipred.serialization import (
    NUMBER, STANDARD_CLIP, TEXT, Featurizer, StudyInfo, StudyInputs, standardized_values)

ROW = {'learning_rate': 1e-3, 'dropout': 0.1, 'num_layers': 3, 'batch_size': 32,
       'optimizer': 'adam', 'use_bias': 'True'}


def test_every_parameter_type_becomes_one_item(mixed_problem):
  inputs = Featurizer(mixed_problem).featurize([ROW, dict(ROW, optimizer='sgd')])
  assert inputs.mask.shape == (2, 6)  # one item per parameter
  assert Featurizer(mixed_problem).metadata().mask.shape == (1, 3)  # metric, goal, title
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
  for name in ('names', 'numbers', 'texts', 'scalars', 'kinds', 'mask', 'values'):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_parameter_order_does_not_matter(mixed_problem):
  fz = Featurizer(mixed_problem)
  reordered = dict(reversed(list(ROW.items())))
  np.testing.assert_array_equal(fz.featurize([ROW]).numbers, fz.featurize([reordered]).numbers)


def test_metadata_is_in_the_input(mixed_problem):
  info = StudyInfo.from_problem(mixed_problem)
  assert info == StudyInfo(title='mlp on mnist', metric_name='accuracy', goal='MAXIMIZE')
  other = StudyInfo(title='cnn on cifar', metric_name='accuracy', goal='MAXIMIZE')
  a = Featurizer(mixed_problem).metadata()
  b = Featurizer(mixed_problem, study=other).metadata()
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


def _conditional_problem() -> vz.ProblemStatement:
  p = vz.ProblemStatement()
  model = p.search_space.root.add_categorical_param('model', ['linear', 'dnn'])
  model.select_values(['linear']).add_float_param('l2', 1e-6, 1.0, scale_type=vz.ScaleType.LOG)
  dnn = model.select_values(['dnn'])
  dnn.add_float_param('lr', 1e-4, 1e-1)
  act = dnn.add_categorical_param('activation', ['relu', 'tanh'])
  act.select_values(['tanh']).add_int_param('layers', 1, 4)
  return p


def test_conditional_rows_hold_only_their_active_parameters():
  rows = [{'model': 'linear', 'l2': 0.01},
          {'model': 'dnn', 'lr': 0.01, 'activation': 'relu'},
          {'model': 'dnn', 'lr': 0.02, 'activation': 'tanh', 'layers': 3}]
  f = Featurizer(_conditional_problem())
  out = f.featurize(rows)
  names = f.parameter_names
  assert names == sorted(['model', 'l2', 'lr', 'activation', 'layers'])
  present = {nm: out.mask[:, j].tolist() for j, nm in enumerate(names)}
  assert present == {'model': [True] * 3, 'l2': [True, False, False],
                     'lr': [False, True, True], 'activation': [False, True, True],
                     'layers': [False, False, True]}
  # An absent item carries nothing: no number tokens, value 0, no standardised feature.
  j = names.index('layers')
  assert not out.numbers[:2, j].any() and not out.values[:2, j].any()
  study = StudyInputs.build(out, f.metadata(), np.array([2.0, 3.0, 2.5]), num_context=3)
  assert not study.features[0, :2, j].any()
  # lr's z-scores come from the two rows that have it, not from a 0 for the linear model.
  k = names.index('lr')
  np.testing.assert_allclose(study.features[0, 1:, k, 0], [-1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize('row, message', [
    ({'model': 'dnn', 'lr': 0.01}, "Row 0: parameter 'activation' is missing"),
    ({'model': 'linear', 'l2': 0.1, 'lr': 0.01},
     "Row 0: parameter 'lr' is set, but its parent does not select it here"),
    ({'model': 'dnn', 'lr': 0.01, 'activation': 'relu', 'layers': 2},
     "Row 0: parameter 'layers' is set, but its parent does not select it"),
    ({'model': 'svm'}, "'model' has value 'svm', which is not one of its feasible values"),
])
def test_conditional_bad_rows_name_the_culprit(row, message):
  with pytest.raises(ValueError, match=message):
    Featurizer(_conditional_problem()).featurize([row])


def test_without_a_problem_types_are_inferred_and_names_checked():
  fz = Featurizer()
  inputs = fz.featurize([{'x': 1.5, 'kind': 'a'}, {'x': -2, 'kind': 'b'}])
  assert inputs.kinds[0, :2].tolist() == [TEXT, NUMBER]  # sorted names: kind, x
  with pytest.raises(ValueError, match="'y' is not in the first row"):
    fz.featurize([{'x': 1.0, 'kind': 'a', 'y': 2}])


def test_non_mapping_rows_are_rejected():
  with pytest.raises(TypeError, match='Expected a parameter mapping'):
    Featurizer().featurize([[1.0, 2.0]])


def test_standardized_values_use_the_context_only():
  values = np.array([[1.0, 10.0], [3.0, 1000.0], [2.0, 100.0], [50.0, 1e6]])
  is_number = np.ones_like(values, dtype=bool)
  is_context = np.array([True, True, True, False])
  f = standardized_values(values, is_number, is_context)
  assert f.shape == (4, 2, 2)
  np.testing.assert_allclose(f[:3, 0, 0], [-1.2247449, 1.2247449, 0.0], rtol=1e-6)
  np.testing.assert_allclose(f[:3, 1, 1], [-1.2247449, 1.2247449, 0.0], rtol=1e-6)  # log z
  assert f[3, 0, 0] == STANDARD_CLIP  # far outside the context: clipped
  # A query's features do not depend on the other queries.
  np.testing.assert_array_equal(
      standardized_values(values[:3], is_number[:3], is_context[:3]), f[:3])
  # No spread, or one context trial: nothing tells the scale, so 0.
  assert not standardized_values(values, is_number, np.array([True, False, False, False])).any()


def test_standardized_log_values_need_positive_context():
  values = np.array([[-1.0], [1.0], [3.0]])
  f = standardized_values(values, np.ones_like(values, dtype=bool), np.ones(3, dtype=bool))
  np.testing.assert_array_equal(f[..., 0], f[..., 1])


def test_study_inputs_stack_pads_trials_items_and_metadata(mixed_problem):
  a = Featurizer(mixed_problem)
  b = Featurizer()
  one = StudyInputs.build(a.featurize([ROW, ROW, ROW]), a.metadata(), np.array([2.0, 3.0]), 2)
  two = StudyInputs.build(b.featurize([{'x': 1.0}, {'x': 2.0}]), b.metadata(),
                          np.array([2.0]), 1)
  both = StudyInputs.stack([one, two])
  assert both.items.mask.shape == (2, 3, 6) and both.meta.mask.shape == (2, 3)
  np.testing.assert_array_equal(both.present, [[True, True, True], [True, True, False]])
  np.testing.assert_array_equal(both.is_context, [[True, True, False], [True, False, False]])
  assert both.num_queries == 2
  assert both.items.mask[1].sum() == 2 and both.meta.mask[1].sum() == 2


def _two_param_problem() -> vz.ProblemStatement:
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.search_space.root.add_categorical_param('c', ['a', 'b'])
  return problem


def test_metric_inputs_are_number_items_after_the_parameters_absent_when_missing():
  f = Featurizer(_two_param_problem(), metric_inputs=('acc',))
  rows = [{'x': 0.3, 'c': 'a', 'acc': 0.5}, {'x': 0.4, 'c': 'b'},
          {'x': 0.4, 'c': 'b', 'acc': float('nan')}]
  inputs = f.featurize(rows)
  assert f.parameter_names == ['c', 'x']
  np.testing.assert_array_equal(inputs.mask[:, 2], [True, False, False])
  assert inputs.values[0, 2] == 0.5 and inputs.kinds[0, 2] == 0
  # The parameters' items are those of a featurizer without metric inputs.
  plain = Featurizer(_two_param_problem()).featurize([{'x': 0.3, 'c': 'a'}])
  np.testing.assert_array_equal(inputs.numbers[:1, :2], plain.numbers)
  np.testing.assert_array_equal(inputs.texts[:1, :2], plain.texts)


def test_with_metric_values_equals_featurizing_the_rows_with_them():
  f = Featurizer(_two_param_problem(), metric_inputs=('acc', 'cost'))
  given = np.array([[0.5, -3e4], [np.nan, 2.0], [1e-9, np.nan]])
  params = [{'x': 0.3, 'c': 'a'}, {'x': 0.9, 'c': 'b'}, {'x': 0.1, 'c': 'a'}]
  direct = f.featurize([dict(p, acc=g[0], cost=g[1]) for p, g in zip(params, given)])
  filled = f.with_metric_values(f.featurize(params), given)
  for field in ('names', 'kinds', 'numbers', 'scalars', 'texts', 'mask', 'values'):
    np.testing.assert_array_equal(getattr(filled, field), getattr(direct, field), err_msg=field)


def test_metric_inputs_reject_a_parameter_name_and_non_numbers():
  with pytest.raises(ValueError, match="Metric 'x' is also a parameter name"):
    Featurizer(_two_param_problem(), metric_inputs=('x',))
  f = Featurizer(_two_param_problem(), metric_inputs=('acc',))
  with pytest.raises(ValueError, match="Row 0: metric 'acc' is read as a number"):
    f.featurize([{'x': 0.3, 'c': 'a', 'acc': 'high'}])
