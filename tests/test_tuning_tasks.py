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
