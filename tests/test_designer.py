import math

import attrs

import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers.candidates import parameter_key
from designers.suggestion_metadata import NAMESPACE
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from vizier_omnipred import FineTuneConfig, OmniPredRegressor, RelevanceConfig, StudyInfo
from vizier_omnipred import search_space
from tests.conftest import TINY, expected_active

FAST = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=8)
# LoRA from the 4th feasible trial on: the designer tests exercise both paths.
FAST_SURROGATE = LMSurrogateConfig(lora_from_trials=4, fine_tune=FineTuneConfig(max_steps=4),
                                   warm_start_steps=2)


def _designer(problem, seed=0, config=FAST, surrogate_config=FAST_SURROGATE):
  surrogate = LMSurrogate(problem, StudyInfo.from_problem(problem, config.metric_name),
                          config=surrogate_config,
                          regressor=OmniPredRegressor.from_scratch(TINY, seed=0))
  return OmniPredDesigner(problem, seed=seed, config=config, surrogate=surrogate)


def _objective(params: vz.ParameterDict) -> float:
  total = 0.0
  for name, value in params.items():
    v = value.value
    total += (len(v) if isinstance(v, str) else math.log1p(abs(float(v))))
  return total


def _run(designer, problem, n, *, count=1, value_fn=_objective, start_id=1):
  """Suggest/complete loop; returns the completed trials."""
  trials = []
  tid = start_id
  while len(trials) < n:
    suggestions = designer.suggest(count)
    assert len(suggestions) >= count
    batch = []
    for s in suggestions[:count]:
      assert search_space.is_valid(problem.search_space, s.parameters), s.parameters
      t = s.to_trial(tid)
      tid += 1
      value = value_fn(t.parameters)
      if value is None:
        t.complete(vz.Measurement(), infeasibility_reason='crashed')
      else:
        t.complete(vz.Measurement(metrics={problem.metric_information.item().name: value}))
      batch.append(t)
    designer.update(vza.CompletedTrials(batch), vza.ActiveTrials())
    trials.extend(batch)
  return trials


@pytest.mark.parametrize('goal', [vz.ObjectiveMetricGoal.MAXIMIZE, vz.ObjectiveMetricGoal.MINIMIZE])
def test_every_parameter_type_and_both_goals(mixed_problem, goal):
  mixed_problem.metric_information = vz.MetricsConfig([vz.MetricInformation('accuracy', goal=goal)])
  designer = _designer(mixed_problem)
  trials = _run(designer, mixed_problem, 7)
  assert [t.metadata.ns('omnipred')['phase'] for t in trials][:3] == ['seed'] * 3
  assert trials[-1].metadata.ns('omnipred')['phase'] == 'model'
  assert all(isinstance(t.parameters['num_layers'].value, int) for t in trials)
  assert designer.last_report['training_steps'] >= 1


def test_suggestions_say_which_parameters_the_model_read(mixed_problem):
  """With relevance on, each model-phase suggestion's metadata names the parameters the
  surrogate chose to read; reading every parameter, it says nothing."""
  surrogate = LMSurrogate(
      mixed_problem, StudyInfo.from_problem(mixed_problem), config=FAST_SURROGATE,
      regressor=OmniPredRegressor.from_scratch(TINY, seed=0, relevance=RelevanceConfig()))
  designer = OmniPredDesigner(mixed_problem, seed=0, config=FAST, surrogate=surrogate)
  trials = _run(designer, mixed_problem, 9)
  read = trials[-1].metadata.ns('omnipred')['parameters_read'].split(',')
  names = [p.name for p in mixed_problem.search_space.parameters]
  assert read and set(read) <= set(names) and read == [n for n in names if n in read]
  assert read == surrogate.regressor.parameters_read
  plain = _run(_designer(mixed_problem), mixed_problem, 9)
  assert 'parameters_read' not in plain[-1].metadata.ns('omnipred')


def test_zero_completed_trials_starts_at_the_centre():
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', -5.0, 5.0)
  problem.search_space.root.add_int_param('n', 0, 10)
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  first = _designer(problem).suggest(3)
  assert first[0].parameters['x'].value == 0.0 and first[0].parameters['n'].value == 5
  assert len({parameter_key(s.parameters) for s in first}) == 3


def test_batches_have_no_duplicates_of_completed_active_or_each_other():
  problem = vz.ProblemStatement()
  problem.search_space.root.add_categorical_param('a', ['p', 'q', 'r'])
  problem.search_space.root.add_categorical_param('b', ['u', 'v', 'w', 'z'])
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  designer = _designer(problem)
  completed = _run(designer, problem, 4)
  active = designer.suggest(2)
  active_trials = [s.to_trial(100 + i) for i, s in enumerate(active)]
  designer.update(vza.CompletedTrials([]), vza.ActiveTrials(active_trials))
  batch = designer.suggest(5)
  keys = [parameter_key(s.parameters) for s in batch]
  assert len(set(keys)) == 5
  taken = {parameter_key(t.parameters) for t in completed + active_trials}
  assert not taken & set(keys)


def test_an_exhausted_space_still_returns_count_suggestions():
  problem = vz.ProblemStatement()
  problem.search_space.root.add_bool_param('flag')
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  designer = _designer(problem)
  _run(designer, problem, 2, value_fn=lambda p: 1.0 if p['flag'].value == 'True' else 0.0)
  assert len(designer.suggest(3)) == 3


def test_one_parameter_and_infeasible_and_nan_trials():
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MINIMIZE))

  def value_fn(p):
    x = p['x'].value
    if x > 0.8:
      return None  # infeasible
    if 0.7 < x <= 0.8:
      return float('nan')
    return (x - 0.3) ** 2

  designer = _designer(problem)
  trials = _run(designer, problem, 12, value_fn=value_fn)
  feasible = [t for t in trials if not t.infeasible
              and np.isfinite(t.final_measurement.metrics['y'].value)]
  assert designer.last_report['training_steps'] >= 1
  assert len(designer._record.feasible) == len(feasible)


def test_missing_metric_is_not_fed_as_a_number(mixed_problem):
  designer = _designer(mixed_problem)
  _run(designer, mixed_problem, 4)
  t = designer.suggest(1)[0].to_trial(99)
  t.complete(vz.Measurement(metrics={'other': 1.0}))
  designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  assert len(designer._record.feasible) == 4
  assert len(designer.suggest(2)) == 2


@pytest.mark.parametrize('scale', [1e300, -1e-300, 0.0])
def test_extreme_and_constant_objectives(scale):
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', -1.0, 1.0)
  problem.search_space.root.add_float_param('z', 1e-3, 1e3, scale_type=vz.ScaleType.LOG)
  problem.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  designer = _designer(problem, config=FAST)
  _run(designer, problem, 6, value_fn=lambda p: scale * (1 + p['x'].value))
  assert len(designer.suggest(2)) == 2


def test_seeded_runs_are_reproducible(mixed_problem):
  a = [t.parameters.as_dict() for t in _run(_designer(mixed_problem, seed=7), mixed_problem, 6)]
  b = [t.parameters.as_dict() for t in _run(_designer(mixed_problem, seed=7), mixed_problem, 6)]
  assert a == b
  c = [t.parameters.as_dict() for t in _run(_designer(mixed_problem, seed=8), mixed_problem, 6)]
  assert a != c


def test_time_budget_degrades_and_says_so(mixed_problem):
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=4096, min_candidates=16,
                                  num_samples=8, time_budget_s=0.05)
  designer = _designer(mixed_problem, config=config, surrogate_config=LMSurrogateConfig(
      lora_from_trials=3, fine_tune=FineTuneConfig(max_steps=200), warm_start_steps=200))
  _run(designer, mixed_problem, 3)  # seed trials only
  # The first model suggestion has no cost estimate yet: it samples a probe batch and sizes
  # the pool from it, so it is capped too.
  for _ in range(2):
    s = designer.suggest(1)[0]
    assert 'time budget' in s.metadata.ns('omnipred')['degraded']
    assert designer.last_report['candidates'] < 4096
    _run(designer, mixed_problem, 1)


def test_conditional_space_suggestions_hold_exactly_their_active_parameters(
    conditional_problem):
  designer = _designer(conditional_problem)
  trials = _run(designer, conditional_problem, 12, count=2)
  assert trials[-1].metadata.ns('omnipred')['phase'] == 'model'
  for t in trials:
    assert set(t.parameters) == expected_active(t.parameters), t.parameters
  # The model phase explores the branches: more than one model family and a nested child.
  assert len({t.parameters['model'].value for t in trials}) > 1
  assert any('degree' in t.parameters or 'gamma' in t.parameters for t in trials)
  assert 'left_out_trials' not in trials[-1].metadata.ns('omnipred')


def test_bad_problems_fail_at_construction():
  flat = vz.ProblemStatement()
  flat.search_space.root.add_float_param('x', 0.0, 1.0)
  flat.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MAXIMIZE))
  with pytest.raises(ValueError, match="Metric 'loss' is not in the problem"):
    OmniPredDesigner(flat, config=OmniPredDesignerConfig(metric_name='loss'))


def test_unknown_acquisition_is_rejected():
  with pytest.raises(ValueError, match='acquisition'):
    OmniPredDesignerConfig(acquisition='magic')


def test_surrogate_uses_its_torch_threads_and_restores_the_callers(mixed_problem):
  import torch
  seen = []
  designer = _designer(mixed_problem, config=attrs.evolve(FAST, num_seed_trials=2),
                       surrogate_config=attrs.evolve(FAST_SURROGATE, torch_threads=1))
  _run(designer, mixed_problem, 2)
  regressor = designer.surrogate.regressor
  original = regressor.sample

  def spy(*args, **kwargs):
    seen.append(torch.get_num_threads())
    return original(*args, **kwargs)

  regressor.sample = spy
  before = torch.get_num_threads()
  torch.set_num_threads(2)
  try:
    designer.suggest(1)
    assert seen == [1] and torch.get_num_threads() == 2
  finally:
    torch.set_num_threads(before)


def test_surrogate_runs_on_the_configured_or_detected_device(mixed_problem, monkeypatch):
  import torch
  from vizier_omnipred import default_device
  surrogate = LMSurrogate(mixed_problem, StudyInfo.from_problem(mixed_problem),
                          config=LMSurrogateConfig(device='cpu'))
  assert surrogate.regressor.model.device == torch.device('cpu')
  monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
  assert default_device() == 'cuda'
  monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
  assert default_device() == 'cpu'
  with pytest.raises(ValueError, match="device 'gpu0' is not a torch device"):
    LMSurrogateConfig(device='gpu0')


def test_quantile_draws_are_the_exact_stratified_quantiles_and_a_designer_runs_on_them(
    mixed_problem):
  """draws='quantiles': sample() returns each candidate's exact quantiles at (k + 1/2) / S,
  ascending and the same for any seed; the designer suggests from them like from draws."""
  config = LMSurrogateConfig(draws='quantiles', torch_threads=None)
  surrogate = LMSurrogate(mixed_problem, StudyInfo.from_problem(mixed_problem), config=config,
                          regressor=OmniPredRegressor.from_scratch(TINY, seed=0))
  trials = _run(OmniPredDesigner(mixed_problem, seed=0, config=FAST, surrogate=surrogate),
                mixed_problem, 6)
  assert len(trials) == 6
  params = [t.parameters for t in trials]
  out = surrogate.sample(params, 4, seed=0)
  np.testing.assert_array_equal(out, surrogate.sample(params, 4, seed=7))
  np.testing.assert_array_equal(
      out, surrogate.regressor.quantiles(params, (0.125, 0.375, 0.625, 0.875)))
  assert np.all(np.diff(out, axis=1) >= 0) and np.ptp(out) > 0
  with pytest.raises(ValueError, match="'draws' must be in"):
    LMSurrogateConfig(draws='sobol')


class QuadraticSurrogate:
  """A test surrogate: knows the objective -(x - 0.3)^2, ignores the trials. Not an LM."""

  def __init__(self):
    self.conditioned_on = []

  def condition(self, parameters, y, *, time_budget_s=None):
    self.conditioned_on.append((len(parameters), np.asarray(y)))
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    x = np.asarray([p['x'].value if hasattr(p['x'], 'value') else p['x'] for p in parameters])
    return np.repeat(-(x[:, None] - 0.3) ** 2, num_samples, axis=1)


@pytest.mark.parametrize('goal', [vz.ObjectiveMetricGoal.MAXIMIZE, vz.ObjectiveMetricGoal.MINIMIZE])
def test_any_surrogate_plugs_into_the_designer(goal):
  """The seam: a surrogate that is not the LM drives the designer with no other change, and
  gets the trials' y warped, in the study's own direction."""
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.metric_information.append(vz.MetricInformation('y', goal=goal))
  sign = 1.0 if goal == vz.ObjectiveMetricGoal.MAXIMIZE else -1.0
  surrogate = QuadraticSurrogate()
  designer = OmniPredDesigner(problem, seed=0, config=FAST,
                              surrogate=surrogate if sign > 0 else _Negated(surrogate))
  _run(designer, problem, 4, value_fn=lambda p: sign * -(p['x'].value - 0.3) ** 2)
  best = designer.suggest(1)[0].parameters['x'].value
  assert abs(best - 0.3) < 0.05  # the surrogate's optimum, found through the acquisition
  n, y = surrogate.conditioned_on[-1]
  assert n == 4 and sorted(sign * y) == pytest.approx([0, 1 / 3, 2 / 3, 1])  # rank warp


class _Negated:
  """A MINIMIZE study's surrogate predicts the metric itself: here +(x - 0.3)^2."""

  def __init__(self, inner):
    self.inner = inner

  def condition(self, parameters, y, *, time_budget_s=None):
    return self.inner.condition(parameters, y, time_budget_s=time_budget_s)

  def sample(self, parameters, num_samples, *, seed):
    return -self.inner.sample(parameters, num_samples, seed=seed)


class PrefersForest:
  """A test surrogate that rates every `forest` configuration far above the rest."""

  def condition(self, parameters, y, *, time_budget_s=None):
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    good = np.asarray([p['model'].value == 'forest' for p in parameters], dtype=float)
    return np.repeat(good[:, None], num_samples, axis=1)


def test_the_least_tried_branch_still_gets_some_suggestions(conditional_problem):
  conditional_problem.metric_information = vz.MetricsConfig(
      [vz.MetricInformation('error', goal=vz.ObjectiveMetricGoal.MAXIMIZE)])
  designer = OmniPredDesigner(conditional_problem, seed=0, config=FAST,
                              surrogate=PrefersForest())
  trials = _run(designer, conditional_problem, 33,
                value_fn=lambda p: float(p['model'].value == 'forest'))
  model = [t.parameters['model'].value for t in trials
           if t.metadata.ns('omnipred')['phase'] == 'model']
  seeds = [t.parameters['model'].value for t in trials
           if t.metadata.ns('omnipred')['phase'] == 'seed']
  # Mostly the branch the surrogate prefers, but every branch gets trials.
  assert model.count('forest') >= 0.6 * len(model)
  assert {'linear', 'svm'} <= set(model) | set(seeds), (seeds, model)
  assert len(set(model)) > 1, model  # the model phase itself leaves 'forest' now and then


class RecordsY:
  """A test surrogate that keeps the y the designer feeds it."""

  def __init__(self):
    self.y = None

  def condition(self, parameters, y, *, time_budget_s=None):
    self.y = np.asarray(y)
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    return np.zeros((len(parameters), num_samples))


def test_y_reaches_the_surrogate_as_ranks_in_flat_spaces_and_as_values_in_conditional_ones(
    conditional_problem, mixed_problem):
  """The default warp ('auto'): ranks where values span orders of magnitude (flat BBOB-like
  studies), the values themselves in a conditional space, so a plateau's tiny differences stay
  tiny."""
  for problem, conditional in ((mixed_problem, False), (conditional_problem, True)):
    surrogate = RecordsY()
    designer = OmniPredDesigner(problem, seed=0, config=FAST, surrogate=surrogate)
    values = iter([0.5, 0.5001, 0.5002, 0.9, 3.0, 0.5003, 0.7, 0.8, 0.6])
    _run(designer, problem, FAST.num_seed_trials + 2, value_fn=lambda p: next(values))
    seen = sorted(surrogate.y)
    if conditional:  # the study's own values (MINIMIZE: in the study's direction)
      np.testing.assert_allclose(seen, sorted([0.5, 0.5001, 0.5002, 0.9, 3.0, 0.5003][
          :len(seen)]))
    else:
      np.testing.assert_allclose(np.diff(seen), 1.0 / (len(seen) - 1))


def test_the_surrogate_config_sets_the_views_of_every_study(mixed_problem):
  """`LMSurrogateConfig.views` reaches each study's regressor through the factory, and a
  slot-binding model then mixes that many views in the designer's samples."""
  shared = OmniPredRegressor.from_scratch(attrs.evolve(TINY, slot_binding=True), seed=0)
  factory = LMSurrogate.factory(LMSurrogateConfig(views=3), shared=shared)
  info = StudyInfo.from_problem(mixed_problem, 'accuracy')
  surrogate = factory(mixed_problem, info)
  assert surrogate.regressor.views == 3 and shared.views != 3
  designer = OmniPredDesigner(mixed_problem, seed=0, config=FAST, surrogate=surrogate)
  _run(designer, mixed_problem, 6)
  assert surrogate.regressor.num_views == 3
  with pytest.raises(ValueError, match='views'):
    LMSurrogateConfig(views=0)


class _Bowl:
  """A test surrogate for BBOB's parameter names: predicts x0^2 (a MINIMIZE study)."""

  def condition(self, parameters, y, *, time_budget_s=None):
    return {}

  def sample(self, parameters, num_samples, *, seed):
    x = np.asarray([p['x0'].value for p in parameters])
    return np.repeat(x[:, None] ** 2, num_samples, axis=1)


def test_each_model_suggestion_reports_its_time_split_and_the_runner_records_it():
  from designers.study_runner import run_study, shifted_bbob  # pylint: disable=g-import-not-at-top
  designers = []

  def factory(config):
    def make(problem, seed=None):
      designers.append(OmniPredDesigner(problem, seed=seed, config=config, surrogate=_Bowl()))
      return designers[-1]
    return make
  lm = attrs.evolve(FAST, quadratic_step=None)
  run = run_study('lm', factory(lm), shifted_bbob('Sphere', 1, 0), 8, seed=0)
  seeds = FAST.num_seed_trials
  assert run.splits[:seeds] == [None] * seeds  # the seed phase has no model to time
  for split in run.splits[seeds:]:
    assert set(split) == {'condition', 'search', 'sample'} and min(split.values()) >= 0
  report = designers[-1].last_report
  assert sum(report['split'].values()) == pytest.approx(report['seconds'])
  # With the quadratic step (the default), its steps read no model: no split recorded.
  run = run_study('step', factory(FAST), shifted_bbob('Sphere', 1, 0), 12, seed=0)
  phases = [t.metadata.ns(NAMESPACE).get('phase') for t in run.trials]
  assert {'model', 'quadratic_step'} <= set(phases)  # on a bowl the step takes turns
  for phase, split in zip(phases, run.splits):
    assert (split is not None) == (phase == 'model'), phase


def test_the_runner_s_progress_stops_at_the_study_s_trials_when_batches_overshoot():
  from designers.study_runner import run_study, shifted_bbob  # pylint: disable=g-import-not-at-top
  from vizier._src.algorithms.designers import random  # pylint: disable=g-import-not-at-top

  class Bar:  # what run_study uses of a tqdm bar
    n = 0

    def update(self, k):
      self.n += k
  bar = Bar()
  run = run_study('random', lambda p, seed=None: random.RandomDesigner(p.search_space, seed=seed),
                  shifted_bbob('Sphere', 2, 0), 7, seed=0, batch_size=3, progress=bar)
  assert bar.n == 7 and len(run.trials) == 7  # 9 trials ran (3 batches of 3); 7 are the study's
