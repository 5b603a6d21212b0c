"""What a user's odd study gets from the designer: values of any size, a predicted median in
the metric's own units, and a bounded choice of parameters however many there are."""

import time

import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from vizier_omnipred import OmniPredRegressor, RelevanceConfig, StudyInfo
from tests.conftest import TINY

FAST = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=32, num_samples=4)


def _designer(problem, *, relevance=None, config=FAST):
  surrogate = LMSurrogate(problem, StudyInfo.from_problem(problem),
                          config=LMSurrogateConfig(torch_threads=None),
                          regressor=OmniPredRegressor.from_scratch(TINY, relevance=relevance))
  return OmniPredDesigner(problem, seed=0, config=config, surrogate=surrogate)


def _problem(add, goal=vz.ObjectiveMetricGoal.MINIMIZE) -> vz.ProblemStatement:
  problem = vz.ProblemStatement()
  add(problem.search_space.root)
  problem.metric_information.append(vz.MetricInformation('loss', goal=goal))
  return problem


def _cycles(designer, n, value_fn):
  """n suggest/complete/update cycles; -> the suggestions."""
  out = []
  for i in range(n):
    (s,) = designer.suggest(1)
    t = s.to_trial(i + 1)
    t.complete(vz.Measurement({'loss': value_fn(i, t.parameters)}))
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
    out.append(s)
  return out


@pytest.mark.parametrize('add', [
    lambda r: r.add_float_param('x', 1e-300, 1e300, scale_type=vz.ScaleType.LOG),
    lambda r: r.add_float_param('x', 0.0, 1e40),
], ids=['log_1e-300_1e300', 'linear_0_1e40'])
def test_parameter_values_of_any_size_get_model_suggestions(add):
  problem = _problem(add)
  suggestions = _cycles(_designer(problem), 3 + 12, lambda i, p: float(i))
  phases = [s.metadata.ns('omnipred')['phase'] for s in suggestions[3:]]
  # Every suggestion after the seeds is the model's or the local quadratic's step (values
  # that overflow neither falls back to the seed phase), and most are the model's.
  assert set(phases) <= {'model', 'quadratic_step'} and phases.count('model') >= 6, phases
  assert any(abs(s.parameters['x'].value) >= 1e31 for s in suggestions)


@pytest.mark.parametrize('goal, value', [
    (vz.ObjectiveMetricGoal.MINIMIZE, lambda x: 100.0 + x[0] ** 2 + x[1] ** 2),
    (vz.ObjectiveMetricGoal.MAXIMIZE, lambda x: -3.0 - abs(x[0]) - 2 * abs(x[1])),
], ids=['minimize_above_100', 'maximize_never_positive'])
def test_the_predicted_median_is_in_the_metrics_units(goal, value):
  def add(r):
    r.add_float_param('x0', -5.0, 5.0)
    r.add_float_param('x1', -5.0, 5.0)
  problem = _problem(add, goal)
  observed = []

  def fn(i, p):
    observed.append(value([p['x0'].value, p['x1'].value]))
    return observed[-1]
  suggestions = _cycles(_designer(problem), 10, fn)
  model = [s for s in suggestions[3:] if s.metadata.ns('omnipred')['phase'] == 'model']
  assert model  # a quadratic's step predicts a decrease, not a median
  for s in model:
    median = float(s.metadata.ns('omnipred')['predicted_median'])
    assert min(observed) <= median <= max(observed)


def test_sixty_parameters_choose_what_to_read_within_the_bound():
  def add(r):
    for j in range(60):
      r.add_float_param(f'x{j:02d}', -1.0, 1.0)
  problem = _problem(add)
  relevance = RelevanceConfig(min_trials=3, max_scores=16)
  designer = _designer(problem, relevance=relevance)
  scores = []
  regressor = designer.surrogate.regressor
  original = regressor._select_parameters  # pylint: disable=protected-access

  def counted():
    selection = original()
    scores.append(len(selection.scores))
    return selection
  regressor._select_parameters = counted  # pylint: disable=protected-access
  start = time.perf_counter()
  suggestions = _cycles(designer, 6, lambda i, p: p['x00'].value ** 2)
  assert time.perf_counter() - start < 60
  model = suggestions[3:]
  assert scores and all(s.metadata.ns('omnipred').get('parameters_read_cut') for s in model)
