"""Several objectives: the regressor's joint samples, and the designer's EHVI search."""

import attrs
import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import hypervolume
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig
from designers.surrogate import ChainedObjectives, IndependentObjectives, _merged_report
from vizier_omnipred import MultiObjectiveRegressor, OmniPredRegressor, checkpoints
from tests.conftest import TINY

MAX, MIN = vz.ObjectiveMetricGoal.MAXIMIZE, vz.ObjectiveMetricGoal.MINIMIZE
# y_warp 'none': the oracle below answers in the metric's own units, as the designer reads them.
FAST = OmniPredDesignerConfig(num_seed_trials=4, num_candidates=128, num_samples=8,
                              y_warp='none')


def _problem(goals=(MAX, MIN)) -> vz.ProblemStatement:
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.search_space.root.add_float_param('y', 0.0, 1.0)
  for name, goal in zip(('a', 'b'), goals):
    problem.metric_information.append(vz.MetricInformation(name, goal=goal))
  return problem


def _true(name: str, goal, p) -> float:
  """a peaks at (0.2, 0.5), b at (0.8, 0.5), each in its goal's direction; the Pareto set is
  y = 0.5, 0.2 <= x <= 0.8."""
  x, y = p['x'], p['y']
  x, y = getattr(x, 'value', x), getattr(y, 'value', y)
  centre = 0.2 if name == 'a' else 0.8
  d = (x - centre) ** 2 + (y - 0.5) ** 2
  return -d if goal == MAX else d


class OracleSurrogate:
  """Knows its metric exactly (in the study's direction, unwarped) and records how many
  trials it read."""

  def __init__(self, name, goal):
    self.name, self.goal, self.read = name, goal, []

  def condition(self, parameters, y, *, time_budget_s=None):
    np.testing.assert_allclose(y, [_true(self.name, self.goal, p) for p in parameters])
    self.read.append(len(parameters))
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    f = np.asarray([_true(self.name, self.goal, p) for p in parameters])
    return np.repeat(f[:, None], num_samples, axis=1)


def _run(designer, problem, n, values):
  trials, tid = [], 1
  while len(trials) < n:
    for s in designer.suggest(1):
      t = s.to_trial(tid)
      tid += 1
      t.complete(vz.Measurement(metrics=values(t.parameters)))
      designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
      trials.append(t)
  return trials


def _oracle_designer(problem):
  made = {}

  def factory(problem, info):
    goal = MAX if info.goal == 'MAXIMIZE' else MIN
    made[info.metric_name] = OracleSurrogate(info.metric_name, goal)
    return made[info.metric_name]

  return OmniPredDesigner(problem, seed=0, config=FAST, surrogate_factory=factory), made


@pytest.mark.parametrize('goals', [(MAX, MIN), (MIN, MAX), (MIN, MIN)])
def test_ehvi_spreads_suggestions_along_the_pareto_set(goals):
  problem = _problem(goals)
  designer, _ = _oracle_designer(problem)
  trials = _run(designer, problem, 24,
                lambda p: {n: _true(n, g, p) for n, g in zip('ab', goals)})
  model = [t for t in trials if t.metadata.ns('omnipred')['phase'] == 'model']
  assert len(model) == 20
  xs = np.asarray([t.parameters['x'].value for t in model])
  ys = np.asarray([t.parameters['y'].value for t in model])
  # Near the Pareto set (the seed points are not: Halton), and spread along it rather than
  # collapsed onto one objective's optimum.
  near = (np.abs(ys - 0.5) < 0.15) & (xs > 0.1) & (xs < 0.9)
  assert near.mean() >= 0.7, list(zip(xs.round(2), ys.round(2)))
  assert np.ptp(xs[near]) > 0.4
  md = model[-1].metadata.ns('omnipred')
  assert 'predicted_median:a' in md and 'predicted_median:b' in md


def test_a_nan_in_one_objective_still_informs_the_other():
  problem = _problem()
  designer, made = _oracle_designer(problem)

  def values(p):
    out = {n: _true(n, g, p) for n, g in zip('ab', (MAX, MIN))}
    if p['x'].value > 0.6:  # b fails to measure there; a is fine
      out['b'] = float('nan')
    return out

  trials = _run(designer, problem, 12, values)
  nan_b = sum(np.isnan(t.final_measurement.metrics['b'].value) for t in trials[:-1])
  assert nan_b >= 1
  assert made['a'].read[-1] == 11 and made['b'].read[-1] == 11 - nan_b


def test_one_surrogate_for_several_objectives_is_refused():
  with pytest.raises(ValueError, match=r"2 objectives \['a', 'b'\] and 0 safety metrics: pass"):
    OmniPredDesigner(_problem(), surrogate=OracleSurrogate('a', MAX))


def test_metric_name_still_optimises_one_objective_of_several():
  problem = _problem()
  designer = OmniPredDesigner(problem, config=OmniPredDesignerConfig(metric_name='b'),
                              surrogate=OracleSurrogate('b', MIN))
  assert designer.num_objectives == 1


def test_the_regressor_samples_every_metric_jointly_shaped_n_s_m():
  rng = np.random.default_rng(0)
  problem = _problem()
  examples = []
  for i in range(12):
    p = {'x': float(rng.random()), 'y': float(rng.random())}
    values = {'a': _true('a', MAX, p), 'b': _true('b', MIN, p)}
    if i == 3:
      values['b'] = float('nan')
    examples.append((p, values))
  reg = MultiObjectiveRegressor(OmniPredRegressor.from_scratch(TINY), problem)
  reg.condition(examples)
  assert reg.num_context == {'a': 12, 'b': 11}
  samples = reg.sample([{'x': 0.5, 'y': 0.5}, {'x': 0.1, 'y': 0.9}], num_samples=5)
  assert samples.shape == (2, 5, 2) and np.all(np.isfinite(samples))
  # Each metric's samples live in its own units (the context's range).
  for k, name in enumerate('ab'):
    y = [v[name] for _, v in examples if np.isfinite(v[name])]
    assert np.median(samples[:, :, k]) == pytest.approx(np.median(y), abs=3 * np.ptp(y))
  with pytest.raises(ValueError, match="Metric 'b' has 1 finite values"):
    reg.condition([(p, {'a': v['a'], 'b': v['b'] if i == 0 else float('nan')})
                   for i, (p, v) in enumerate(examples)])


def _linked_examples(n, rng, nan_at=()):
  """b = 1 - 2 a exactly, a a smooth function of (x, y): a trade-off the chain can read."""
  out = []
  for i in range(n):
    p = {'x': float(rng.random()), 'y': float(rng.random())}
    a = float(np.sin(5 * p['x']) + p['y'])
    out.append((p, {'a': float('nan') if i in nan_at else a, 'b': 1.0 - 2.0 * a}))
  return out


def test_joint_regressor_chains_metric_b_on_a_absent_where_a_is_missing():
  problem = _problem()
  examples = _linked_examples(10, np.random.default_rng(0), nan_at=(4,))
  reg = MultiObjectiveRegressor(OmniPredRegressor.from_scratch(TINY), problem)
  reg.condition(examples)
  first, second = reg._regressors
  assert first.featurizer.metric_inputs == () and second.featurizer.metric_inputs == ('a',)
  # b reads all 10 trials; a is an item of each but the one where it is missing.
  np.testing.assert_array_equal(second._context.mask[:, -1], [i != 4 for i in range(10)])
  np.testing.assert_allclose(second._context.values[[0, 1], -1],
                             [examples[0][1]['a'], examples[1][1]['a']])
  # sample_given is the regressor read on rows that carry the given values (greedy: exact).
  rows = [{'x': 0.2, 'y': 0.7}, {'x': 0.9, 'y': 0.1}]
  given = np.array([[[0.5], [1.5], [-1.0]], [[0.0], [2.0], [0.7]]])
  fast = second.sample_given(rows, given, temperature=0.0)
  slow = second.sample([dict(r, a=float(g)) for r, gs in zip(rows, given) for g in gs[:, 0]],
                       1, temperature=0.0).reshape(2, 3)
  np.testing.assert_array_equal(fast, slow)
  with pytest.raises(ValueError, match=r'given must be \[n=2, S, k=1\]'):
    second.sample_given(rows, given[:, :, 0])
  independent = MultiObjectiveRegressor(OmniPredRegressor.from_scratch(TINY), problem,
                                        joint=False)
  assert independent._regressors[1].featurizer.metric_inputs == ()


@pytest.mark.skipif(not checkpoints.SHIPPED.exists(), reason='no shipped checkpoint')
def test_shipped_model_samples_linked_metrics_jointly():
  """With b = 1 - 2a in every trial, a candidate's joint samples of (a, b) fall on that line
  (strong negative correlation within the candidate); sampled independently they do not."""
  rng = np.random.default_rng(1)
  problem = _problem()
  examples = _linked_examples(25, rng)
  rows = [{'x': float(rng.random()), 'y': float(rng.random())} for _ in range(40)]
  base = OmniPredRegressor.from_pretrained()

  def within_candidate_correlation(joint):
    reg = MultiObjectiveRegressor(base, problem, joint=joint)
    reg.condition(examples)
    s = reg.sample(rows, num_samples=16)
    return np.mean([np.corrcoef(c[:, 0], c[:, 1])[0, 1] for c in s
                    if c[:, 0].std() > 0 and c[:, 1].std() > 0])

  assert within_candidate_correlation(True) < -0.5
  assert abs(within_candidate_correlation(False)) < 0.25


def test_designer_chains_lm_objectives_on_request_and_otherwise_samples_them_apart():
  problem = _problem()
  factory = LMSurrogate.factory(LMSurrogateConfig(), shared=OmniPredRegressor.from_scratch(TINY))
  chained = OmniPredDesigner(problem, config=attrs.evolve(FAST, joint_objectives=True),
                             surrogate_factory=factory)
  assert isinstance(chained._objectives, ChainedObjectives)
  assert [s.regressor.featurizer.metric_inputs for s in chained._objectives.surrogates] == [
      (), ('a',)]
  apart = OmniPredDesigner(problem, config=OmniPredDesignerConfig(), surrogate_factory=factory)
  assert isinstance(apart._objectives, IndependentObjectives)
  assert not isinstance(apart._objectives, ChainedObjectives)
  oracles = OmniPredDesigner(problem, config=FAST, surrogate_factory=lambda p, info:
                             OracleSurrogate(info.metric_name, MAX))
  assert not isinstance(oracles._objectives, ChainedObjectives)
  # The chained designer runs a study: its second objective's context (the 7 trials before
  # the last suggestion) carries a's values.
  trials = _run(chained, problem, 8, lambda p: {'a': _true('a', MAX, p), 'b': _true('b', MIN, p)})
  second = chained._objectives.surrogates[1].regressor
  assert second.num_context == 7 and second._context.mask[:, -1].all()
  assert trials[-1].metadata.ns('omnipred')['phase'] == 'model'


class LinearSafetyOracle:
  """Knows the safety metric s = x exactly (raw units, as the designer feeds it)."""

  def condition(self, parameters, y, *, time_budget_s=None):
    np.testing.assert_allclose(y, [p['x'].value for p in parameters])
    return {'training_steps': 0}

  def sample(self, parameters, num_samples, *, seed):
    x = np.asarray([p['x'].value for p in parameters])
    return np.repeat(x[:, None], num_samples, axis=1)


def test_a_safety_metric_keeps_suggestions_on_its_safe_side():
  # The objective peaks at x = 0.8, but s = x must stay <= 0.5: the best safe x is 0.5.
  problem = vz.ProblemStatement()
  problem.search_space.root.add_float_param('x', 0.0, 1.0)
  problem.search_space.root.add_float_param('y', 0.0, 1.0)
  problem.metric_information.append(vz.MetricInformation('a', goal=MAX))
  problem.metric_information.append(
      vz.MetricInformation('s', goal=MIN, safety_threshold=0.5))

  def factory(problem, info):
    if info.metric_name == 's':
      return LinearSafetyOracle()
    return OracleSurrogate('b', MAX)  # -(x - 0.8)^2 - (y - 0.5)^2

  def values(p):
    return {'a': _true('b', MAX, p), 's': p['x'].value}

  designer = OmniPredDesigner(problem, seed=0, config=FAST, surrogate_factory=factory)
  trials = _run(designer, problem, 20, values)
  model = [t for t in trials if t.metadata.ns('omnipred')['phase'] == 'model']
  xs = np.asarray([t.parameters['x'].value for t in model])
  assert (xs <= 0.5).mean() >= 0.8, xs.round(2)
  assert xs[xs <= 0.5].max() > 0.4  # it pushes up to the boundary
  # Without the safety metric the same designer goes past it.
  problem.metric_information = vz.MetricsConfig([vz.MetricInformation('a', goal=MAX)])
  free = OmniPredDesigner(problem, seed=0, config=FAST, surrogate_factory=factory)
  free_xs = np.asarray([t.parameters['x'].value for t in _run(free, problem, 20, values)[4:]])
  assert (free_xs > 0.5).mean() > 0.5


def test_merged_report_names_each_objectives_parameters_in_order():
  merged = _merged_report([{'training_steps': 1, 'parameters_read': 'x,y'}, {'training_steps': 2},
                           {'training_steps': 0, 'parameters_read': 'z'}])
  assert merged['parameters_read'] == 'x,y | * | z' and merged['training_steps'] == 3
  assert 'parameters_read' not in _merged_report([{'training_steps': 0}, {'training_steps': 0}])
