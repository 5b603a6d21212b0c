import numpy as np
import pytest
from vizier import algorithms as vza
from vizier import pyvizier as vz

from designers import quadratic_step
from designers.omnipred_designer import OmniPredDesigner, OmniPredDesignerConfig
from designers.quadratic_step import QuadraticStepConfig

CONFIG = QuadraticStepConfig()


def _cloud(n, d, centre, spread, seed=0):
  return np.clip(centre + np.random.default_rng(seed).uniform(-spread, spread, (n, d)), 0, 1)


def test_a_separable_bowl_s_minimum_is_found_in_one_step():
  """Trials around (0.5, ...) of a bowl whose minimum is at 0.55: the step lands on it."""
  d = 3
  target = np.full(d, 0.55)
  weights = np.asarray([1.0, 10.0, 100.0])
  unit = _cloud(40, d, 0.5, 0.1)
  step = quadratic_step.propose(unit, -((unit - target) ** 2 * weights).sum(1), CONFIG)
  assert step is not None and step.fit > 0.999 and step.predicted > 0
  assert step.fitted == quadratic_step.num_fitted(d, CONFIG) == 11
  np.testing.assert_allclose(step.point, target, atol=1e-6)


def test_the_step_stays_within_the_fitted_trials_span_of_the_incumbent():
  """A minimum far outside the trials: the step goes no farther than they reach."""
  unit = _cloud(30, 2, 0.3, 0.05)
  oriented = -((unit - 0.9) ** 2).sum(1)
  step = quadratic_step.propose(unit, oriented, CONFIG)
  best = unit[np.argmax(oriented)]
  nearest = np.argsort(((unit - best) ** 2).sum(1))[:quadratic_step.num_fitted(2, CONFIG)]
  reach = np.abs(unit[nearest] - best).max(0)
  assert step is not None
  assert np.all(np.abs(step.point - best) <= reach + 1e-12)
  assert np.all(step.point > best)  # towards the minimum, to the box's edge


def test_fit_lowest_fits_the_lowest_trials_and_steps_within_their_span():
  """The lowest trials, not the nearest the incumbent, set the model and the box."""
  unit = _cloud(30, 2, 0.3, 0.05)
  oriented = -((unit - 0.9) ** 2 * np.asarray([1.0, 100.0])).sum(1)  # the lowest: high x1
  config = QuadraticStepConfig(fit_lowest=True)
  step = quadratic_step.propose(unit, oriented, config)
  best = unit[np.argmax(oriented)]
  lowest = np.argsort(-oriented)[:quadratic_step.num_fitted(2, config)]
  reach = np.abs(unit[lowest] - best).max(0)
  assert step is not None and step.fit > 0.999
  np.testing.assert_allclose(np.abs(step.point - best), reach)  # to the box's edge
  nearest = np.argsort(((unit - best) ** 2).sum(1))[:quadratic_step.num_fitted(2, CONFIG)]
  assert not np.allclose(reach, np.abs(unit[nearest] - best).max(0))


def test_switch_on_failure_alternates_the_fitted_trials_after_each_failed_step():
  assert [CONFIG.fits_lowest(k) for k in range(3)] == [False] * 3
  assert [QuadraticStepConfig(fit_lowest=True).fits_lowest(k) for k in range(3)] == [True] * 3
  switch = QuadraticStepConfig(switch_on_failure=True)
  assert [switch.fits_lowest(k) for k in range(4)] == [False, True, False, True]
  from_lowest = QuadraticStepConfig(fit_lowest=True, switch_on_failure=True)
  assert [from_lowest.fits_lowest(k) for k in range(3)] == [True, False, True]
  unit = _cloud(30, 2, 0.3, 0.05)
  oriented = -((unit - 0.9) ** 2 * np.asarray([1.0, 100.0])).sum(1)
  given = quadratic_step.propose(unit, oriented, switch, lowest=True)
  configured = quadratic_step.propose(unit, oriented, QuadraticStepConfig(fit_lowest=True))
  assert given is not None and configured is not None
  np.testing.assert_array_equal(given.point, configured.point)
  assert not np.allclose(given.point, quadratic_step.propose(unit, oriented, switch).point)


def test_a_ridge_or_saddle_coordinate_steps_to_the_lower_end():
  """Concave along x1: the model's minimum along it is an end of the box, the lower one."""
  unit = _cloud(30, 2, 0.5, 0.1)
  f = (unit[:, 0] - 0.52) ** 2 - 0.5 * (unit[:, 1] - 0.45) ** 2
  step = quadratic_step.propose(unit, -f, CONFIG)
  assert step is not None
  assert step.point[0] == pytest.approx(0.52, abs=1e-6)
  best = unit[np.argmin(f)]
  nearest = np.argsort(((unit - best) ** 2).sum(1))[:quadratic_step.num_fitted(2, CONFIG)]
  ends = best[1] + np.asarray([-1, 1]) * np.abs(unit[nearest, 1] - best[1]).max()
  assert step.point[1] == pytest.approx(ends[np.argmax(np.abs(ends - 0.45))])


def _rotated_bowl(unit, centre, seed=0):
  """A bowl with condition number 100 whose axes are rotated away from the coordinates."""
  d = unit.shape[1]
  rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]
  hessian = rotation @ np.diag(np.logspace(0, 2, d)) @ rotation.T
  return -np.einsum('ni,ij,nj->n', unit - centre, hessian, unit - centre)


def test_cross_terms_find_a_rotated_bowl_s_minimum_that_the_separable_fit_misses():
  d = 4
  unit = _cloud(40, d, 0.5, 0.1)
  oriented = _rotated_bowl(unit, np.full(d, 0.52))
  cross = quadratic_step.propose(unit, oriented, QuadraticStepConfig(cross_terms=True))
  assert cross is not None and cross.fit > 0.999
  assert cross.fitted == quadratic_step.num_fitted(d, CONFIG, cross_terms=True) == 23
  np.testing.assert_allclose(cross.point, 0.52, atol=1e-4)
  separable = quadratic_step.propose(unit, oriented, CONFIG)
  assert separable is None or np.abs(separable.point - 0.52).max() > 1e-3


def test_cross_terms_wait_for_enough_trials_and_keep_a_separable_bowl_s_step():
  """Below the full quadratic's 23 trials in 4-D the separable fit steps alone; on a
  separable bowl both fits find its minimum."""
  d = 4
  unit = _cloud(22, d, 0.5, 0.1)
  oriented = -((unit - 0.52) ** 2 * np.asarray([1.0, 3.0, 10.0, 30.0])).sum(1)
  config = QuadraticStepConfig(cross_terms=True)
  step = quadratic_step.propose(unit, oriented, config)
  assert step is not None and step.fitted == quadratic_step.num_fitted(d, config) == 14
  np.testing.assert_allclose(step.point, 0.52, atol=1e-4)


def test_a_rotated_bowl_s_minimum_outside_the_trials_is_approached_within_their_span():
  """Newton's point is outside the box: coordinate descent stays inside it and descends."""
  d = 3
  unit = _cloud(40, d, 0.3, 0.05)
  oriented = _rotated_bowl(unit, np.full(d, 0.9))
  step = quadratic_step.propose(unit, oriented, QuadraticStepConfig(cross_terms=True))
  best = unit[np.argmax(oriented)]
  assert step is not None and step.predicted > 0
  nearest = np.argsort(((unit - best) ** 2).sum(1))[:step.fitted]
  assert np.all(np.abs(step.point - best) <= np.abs(unit[nearest] - best).max(0) + 1e-12)
  assert _rotated_bowl(step.point[None], np.full(d, 0.9))[0] > oriented.max()


def test_a_smaller_radius_keeps_the_step_within_that_share_of_the_span():
  unit = _cloud(30, 2, 0.3, 0.05)
  oriented = -((unit - 0.9) ** 2).sum(1)
  best = unit[np.argmax(oriented)]
  whole = quadratic_step.propose(unit, oriented, CONFIG)
  quarter = quadratic_step.propose(unit, oriented, CONFIG, radius=0.25)
  assert whole is not None and quarter is not None
  np.testing.assert_allclose(quarter.point - best, 0.25 * (whole.point - best))


def test_failed_steps_count_the_latest_run_of_steps_that_did_not_improve():
  count = quadratic_step.failed_steps
  assert count([], []) == 0
  assert count([False, True, True], [1.0, 0.5, 0.7]) == 2  # neither beat 1.0
  assert count([False, True, True, False], [1.0, 0.5, 2.0, 3.0]) == 0  # the last step improved
  assert count([False, True, False, True], [1.0, 2.0, 3.0, 2.5]) == 1
  config = QuadraticStepConfig(shrink=0.5)
  assert [config.radius(k) for k in range(3)] == [1.0, 0.5, 0.25]
  assert CONFIG.radius(5) == 1.0


def _steep_in_x0(slope_x1=0.0):
  """30 trials in 3-D: values steep in x0 (minimum 0.55), noise in x2 and, with `slope_x1`, a
  slope without curvature in x1. -> (unit, oriented, the best trial)."""
  unit = _cloud(30, 3, 0.5, 0.1)
  noise = np.random.default_rng(1).normal(scale=0.01, size=30)
  oriented = -(100.0 * (unit[:, 0] - 0.55) ** 2 + slope_x1 * unit[:, 1] + noise)
  return unit, oriented, unit[np.argmax(oriented)]


def test_with_curvature_confidence_only_resolved_coordinates_move():
  """Values steep in x0 (minimum 0.55) and noise in x1, x2: the noise's fitted curvatures send
  x1 and x2 off; with `curvature_confidence` they keep the incumbent's values, x0 still steps."""
  unit, oriented, best = _steep_in_x0()
  free = quadratic_step.propose(unit, oriented, CONFIG)
  confident = quadratic_step.propose(unit, oriented, QuadraticStepConfig(curvature_confidence=2.0))
  assert free is not None and confident is not None
  assert np.abs(free.point[1:] - best[1:]).max() > 0.01
  np.testing.assert_array_equal(confident.point[1:], best[1:])
  assert abs(confident.point[0] - 0.55) < 0.01


def test_with_curvature_confidence_a_clear_slope_still_moves_its_coordinate():
  """x1 far from its optimum: the values fall along it with no curvature the trials can see.
  Held by its curvature alone it would never move; its slope moves it downhill."""
  unit, oriented, best = _steep_in_x0(slope_x1=5.0)
  step = quadratic_step.propose(unit, oriented, QuadraticStepConfig(curvature_confidence=2.0))
  assert step is not None
  assert step.point[1] < best[1] - 0.01  # downhill in x1
  assert step.point[2] == best[2]  # noise: held


def test_unresolved_share_lets_unresolved_coordinates_move_within_that_share_of_the_box():
  unit, oriented, best = _steep_in_x0()
  nearest = np.argsort(((unit - best) ** 2).sum(1))[:quadratic_step.num_fitted(3, CONFIG)]
  span = np.abs(unit[nearest] - best).max(0)
  held = quadratic_step.propose(unit, oriented, QuadraticStepConfig(curvature_confidence=2.0))
  share = quadratic_step.propose(unit, oriented, QuadraticStepConfig(curvature_confidence=2.0,
                                                                       unresolved_share=0.25))
  free = quadratic_step.propose(unit, oriented, CONFIG)
  assert share.point[0] == held.point[0]  # the resolved coordinate steps as before
  offset = np.abs(share.point[1:] - best[1:])
  assert np.all(offset <= 0.25 * span[1:] + 1e-12) and offset.max() > 0
  assert offset.max() < np.abs(free.point[1:] - best[1:]).max()


def test_nearest_fallback_steps_from_the_nearest_trials_where_the_lowest_fit_fails():
  """A bowl around the incumbent and, far from it, a plateau of trials whose values are all
  but tied (below most of the bowl's): the lowest trials fit no quadratic, the nearest do."""
  unit = _cloud(30, 2, 0.3, 0.07)
  bowl = 0.01 + ((unit - 0.32) ** 2).sum(1)
  plateau = np.random.default_rng(3).uniform(0.6, 1.0, (15, 2))
  flat = 0.0101 + 1e-5 * np.random.default_rng(4).uniform(size=15)
  unit, oriented = np.concatenate([unit, plateau]), -np.concatenate([bowl, flat])
  assert quadratic_step.propose(unit, oriented, QuadraticStepConfig(fit_lowest=True)) is None
  fallback = QuadraticStepConfig(fit_lowest=True, nearest_fallback=True)
  step, nearest = (quadratic_step.propose(unit, oriented, c) for c in (fallback, CONFIG))
  assert step is not None and nearest is not None and step.fit > 0.999
  np.testing.assert_array_equal(step.point, nearest.point)
  # where the lowest trials' fit holds, it is theirs
  bowl_only = QuadraticStepConfig(fit_lowest=True)
  np.testing.assert_array_equal(
      quadratic_step.propose(unit[:30], oriented[:30], fallback).point,
      quadratic_step.propose(unit[:30], oriented[:30], bowl_only).point)


def test_nearest_fallback_without_fit_lowest_is_refused_naming_both():
  with pytest.raises(ValueError, match='fit_lowest') as err:
    QuadraticStepConfig(nearest_fallback=True)
  assert 'nearest_fallback=True' in str(err.value)


@pytest.mark.parametrize('case', ['rugged', 'too_few', 'constant', 'nan'])
def test_no_step_where_the_quadratic_cannot_be_trusted(case):
  rng = np.random.default_rng(1)
  unit = _cloud(40, 3, 0.5, 0.3)
  oriented = {'rugged': rng.normal(size=40), 'too_few': -((unit - 0.5) ** 2).sum(1),
              'constant': np.zeros(40), 'nan': np.where(np.arange(40) == 3, np.nan, 1.0)}[case]
  if case == 'too_few':
    unit, oriented = unit[:10], oriented[:10]  # 11 needed in 3-D
  assert quadratic_step.propose(unit, oriented, CONFIG) is None


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match='every'):
    QuadraticStepConfig(every=0)
  with pytest.raises(ValueError, match='points_per_coefficient'):
    QuadraticStepConfig(points_per_coefficient=1.0)
  with pytest.raises(ValueError, match='shrink'):
    QuadraticStepConfig(shrink=1.0)
  with pytest.raises(ValueError, match='curvature_confidence'):
    QuadraticStepConfig(curvature_confidence=0.0)
  with pytest.raises(ValueError, match='unresolved_share'):
    QuadraticStepConfig(curvature_confidence=2.0, unresolved_share=0.0)


def test_unresolved_share_without_curvature_confidence_is_refused_naming_both():
  with pytest.raises(ValueError, match='curvature_confidence') as err:
    QuadraticStepConfig(unresolved_share=0.25)
  assert 'unresolved_share=0.25' in str(err.value)
  both = QuadraticStepConfig(curvature_confidence=2.0, unresolved_share=0.25)
  assert both.unresolved_share == 0.25


class _Flat:
  """A test surrogate that knows nothing: every candidate alike."""

  def condition(self, parameters, y, *, time_budget_s=None):
    return {}

  def sample(self, parameters, num_samples, *, seed):
    return np.zeros((len(parameters), num_samples))


def _problem(categorical: bool = False):
  problem = vz.ProblemStatement()
  for name in ('a', 'b'):
    problem.search_space.root.add_float_param(name, -2.0, 2.0)
  if categorical:
    problem.search_space.root.add_categorical_param('c', ['p', 'q'])
  problem.metric_information.append(
      vz.MetricInformation('loss', goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return problem


def _loss(params):
  return (params['a'].value - 0.7) ** 2 + 3 * (params['b'].value + 0.4) ** 2


def _phases(problem, n, every=2):
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=4,
                                  quadratic_step=QuadraticStepConfig(every=every))
  designer = OmniPredDesigner(problem, seed=0, config=config, surrogate=_Flat())
  phases, best = [], np.inf
  for tid in range(1, n + 1):
    s = designer.suggest(1)[0]
    md = s.metadata.ns('omnipred')
    phases.append(md.get('phase'))
    if md.get('phase') == 'quadratic_step':
      assert float(md['quadratic_fit']) >= QuadraticStepConfig().min_fit
      assert float(md['quadratic_predicted_decrease']) > 0
      assert md['quadratic_fitted_trials'] == '8'
      assert md['quadratic_radius'] == '1'  # no `shrink`: the whole span
    t = s.to_trial(tid)
    t.complete(vz.Measurement(metrics={'loss': _loss(t.parameters)}))
    best = min(best, _loss(t.parameters))
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  return phases, best


def test_the_designer_takes_the_step_on_its_turn_and_converges_on_a_bowl():
  """A surrogate that knows nothing: the quadratic steps alone find the bowl's minimum."""
  phases, best = _phases(_problem(), 30)
  assert phases[:3] == ['seed'] * 3
  steps = [i for i, p in enumerate(phases) if p == 'quadratic_step']
  assert steps and all((i - 3) % 2 == 1 for i in steps)  # every other model-phase turn
  assert best < 1e-6


def test_no_step_in_a_space_with_a_categorical_parameter():
  phases, _ = _phases(_problem(categorical=True), 16)
  assert 'quadratic_step' not in phases


def test_a_batch_holds_one_step_and_the_rest_from_the_model_all_distinct():
  problem = _problem()
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=4,
                                  quadratic_step=QuadraticStepConfig())
  designer = OmniPredDesigner(problem, seed=0, config=config, surrogate=_Flat())
  tid = 0
  while tid < 12:
    batch = []
    for s in designer.suggest(1):
      tid += 1
      t = s.to_trial(tid)
      batch.append(t.complete(vz.Measurement(metrics={'loss': _loss(t.parameters)})))
    designer.update(vza.CompletedTrials(batch), vza.ActiveTrials())
  out = designer.suggest(4)
  phases = [s.metadata.ns('omnipred').get('phase') for s in out]
  assert len(out) == 4 and phases.count('quadratic_step') == 1
  assert phases.count('model') == 3
  keys = {tuple(sorted((k, v.value) for k, v in s.parameters.items())) for s in out}
  assert len(keys) == 4


def test_the_designer_shrinks_the_step_s_box_after_steps_that_did_not_improve():
  """Every step is made to fail (its trial scores a hair worse than the best): with `shrink`,
  each next step's box halves, and the step stays in it."""
  problem = _problem()
  config = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=4,
                                  quadratic_step=QuadraticStepConfig(shrink=0.5))
  designer = OmniPredDesigner(problem, seed=0, config=config, surrogate=_Flat())
  radii, best = [], np.inf
  for tid in range(1, 31):
    s = designer.suggest(1)[0]
    md = s.metadata.ns('omnipred')
    t = s.to_trial(tid)
    loss = _loss(t.parameters)
    if md.get('phase') == 'quadratic_step':
      radii.append(float(md['quadratic_radius']))
      loss = best + 1e-6
    t.complete(vz.Measurement(metrics={'loss': loss}))
    best = min(best, loss)
    designer.update(vza.CompletedTrials([t]), vza.ActiveTrials())
  assert len(radii) >= 4
  assert radii == [0.5 ** k for k in range(len(radii))]
