"""The tuning benchmark's tasks: real scikit-learn scores, evaluated once per configuration
and shared through the on-disk cache (designers, seeds and processes read each other's)."""
import numpy as np
import pytest
from vizier import pyvizier as vz

from benchmarks import tuning_tasks


@pytest.fixture(name='tasks')
def _tasks(monkeypatch, tmp_path):
  monkeypatch.setattr(tuning_tasks, 'CACHE', tmp_path / 'cache')
  yield tuning_tasks


def test_nine_tasks_of_two_to_ten_mixed_parameters(tasks):
  found = tasks.tasks()
  assert len(found) == 9
  sizes = [len(t.problem.search_space.parameters) for t in found.values()]
  assert min(sizes) == 2 and max(sizes) == 10
  kinds = {pc.type for t in found.values() for pc in t.problem.search_space.parameters}
  assert {vz.ParameterType.DOUBLE, vz.ParameterType.INTEGER, vz.ParameterType.CATEGORICAL,
          vz.ParameterType.DISCRETE} <= kinds


def test_an_evaluation_is_cached_and_read_back_by_another_process(tasks):
  task = tasks.tasks()['svr_diabetes']
  calls = []
  counted = tasks.TuningStudy(task.name, task.problem,
                              lambda c: calls.append(c) or task.score(c))
  first = tasks.TaskExperimenter(counted)
  trial = vz.Trial(parameters={'C': 10.0, 'epsilon': 0.1})
  first.evaluate([trial])
  y = trial.final_measurement.metrics['mse'].value
  assert y > 0 and len(calls) == 1
  second = tasks.TaskExperimenter(counted)  # a fresh reader of the same cache file
  again = vz.Trial(parameters={'C': 10.0, 'epsilon': 0.1})
  second.evaluate([again])
  assert again.final_measurement.metrics['mse'].value == y and len(calls) == 1
  assert np.array_equal(second.cache.values(), [y])


def test_an_archived_run_counts_toward_the_best_known_value(tasks, monkeypatch, tmp_path):
  """GP-UCB-PE's tuning runs are kept in git (`run_store.ARCHIVE`): on a machine whose cache
  never saw their evaluations, their values still set y_best, and the tables read them."""
  import json  # pylint: disable=g-import-not-at-top
  from benchmarks import run_store, tuning  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(run_store, 'RAW', tmp_path / 'raw')
  monkeypatch.setattr(run_store, 'ARCHIVE', tmp_path / 'archive')
  monkeypatch.setattr(tuning, 'RAW', tmp_path / 'raw' / 'tuning')
  base = tasks.tasks()['tree_wine']  # accuracy, maximised; scored here by depth alone
  task = tasks.TuningStudy(base.name, base.problem, lambda c: c['max_depth'] / 40)
  assert tuning.raw_path('gp_ucb_pe', task.name, 0).parent == tmp_path / 'archive' / 'tuning'
  for designer, values in (('gp_ucb_pe', [0.2, 0.9]), ('random', [0.3, 0.4])):
    run_store.write_run(tuning.raw_path(designer, task.name, 0), json.dumps({'values': values}))
  regret = tuning.regrets(('random', 'gp_ucb_pe'), {task.name: task}, seeds=(0,), trials=2)
  cached_best, rand = tuning.references(task)  # oriented to minimise: -accuracy
  assert cached_best >= -0.5  # the cache holds the reference draws alone, depth <= 20
  assert regret[('gp_ucb_pe', task.name, 0)][-1] == 0.0
  assert regret[('random', task.name, 0)][-1] == pytest.approx((-0.4 + 0.9) / (rand + 0.9))
