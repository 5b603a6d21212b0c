"""`OmniPredSampler` through Optuna's own API: every distribution kind, define-by-run spaces,
several objectives, constraints, and two processes on one PostgreSQL-backed study."""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from vizier import pyvizier as vz

from designers.omnipred_designer import OmniPredDesignerConfig
from designers.optuna_sampler import (SHARED_PARAMS_KEY, OmniPredSampler,
                                      OmniPredSamplerConfig)
from designers.optuna_space import OptunaProblem, ParameterCodec, conditional_space
from designers.lm_surrogate import LMSurrogate, LMSurrogateConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTRIBUTIONS = {
    'x': FloatDistribution(-5.0, 5.0),
    'lr': FloatDistribution(1e-5, 1e-1, log=True),
    'frac': FloatDistribution(0.0, 1.0, step=0.1),
    'layers': IntDistribution(1, 8),
    'width': IntDistribution(8, 512, log=True),
    'batch': IntDistribution(16, 128, step=16),
    'act': CategoricalDistribution(['relu', 'tanh', None, 1, '1']),
    'flag': CategoricalDistribution([True, False]),
}


def _sampler(checkpoint: str, seed: int = 0, **config) -> OmniPredSampler:
  designer = OmniPredDesignerConfig(num_seed_trials=3, num_candidates=64, num_samples=8)
  return OmniPredSampler(
      seed=seed, config=OmniPredSamplerConfig(designer=designer, **config),
      surrogate_factory=LMSurrogate.factory(LMSurrogateConfig(checkpoint=checkpoint)))


def _suggest_all(trial: optuna.Trial) -> dict:
  out = {}
  for name, d in DISTRIBUTIONS.items():
    if isinstance(d, CategoricalDistribution):
      out[name] = trial.suggest_categorical(name, d.choices)
    elif isinstance(d, IntDistribution):
      out[name] = trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
    else:
      out[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
  return out


@pytest.mark.parametrize('name', sorted(DISTRIBUTIONS))
def test_every_distribution_round_trips_through_vizier(name):
  codec = ParameterCodec(name, DISTRIBUTIONS[name])
  problem = vz.ProblemStatement()
  codec.add_to(problem.search_space.root)
  rng = np.random.default_rng(0)
  values = (DISTRIBUTIONS[name].choices if name in ('act', 'flag')
            else [optuna.samplers.RandomSampler(seed=int(s)).sample_independent(
                None, None, name, DISTRIBUTIONS[name]) for s in rng.integers(0, 1000, 20)])
  for value in values:
    vizier_value = codec.to_vizier(value)
    assert problem.search_space.contains(vz.ParameterDict({name: vizier_value}))
    back = codec.to_optuna(vizier_value)
    assert type(back) is type(value) and (back == value or math.isclose(back, value))


def test_one_and_the_string_one_stay_two_categories():
  codec = ParameterCodec('act', DISTRIBUTIONS['act'])
  assert codec.to_vizier(1) != codec.to_vizier('1')
  assert codec.to_optuna(codec.to_vizier('1')) == '1' and codec.to_optuna(codec.to_vizier(1)) == 1


def test_a_mixed_study_gets_model_suggestions_inside_every_distribution(tiny_checkpoint_file):
  study = optuna.create_study(sampler=_sampler(tiny_checkpoint_file))
  study.optimize(lambda t: sum(hash(str(v)) % 7 for v in _suggest_all(t).values()), n_trials=9)
  assert len(study.trials) == 9
  for trial in study.trials:
    for name, d in DISTRIBUTIONS.items():
      assert d._contains(d.to_internal_repr(trial.params[name]))  # pylint: disable=protected-access
  # After the first trial the relative space is every parameter: the designer chose them.
  assert all(SHARED_PARAMS_KEY in t.system_attrs for t in study.trials[1:])
  keys = {json.dumps(t.params, sort_keys=True) for t in study.trials}
  assert len(keys) == 9


def test_failed_and_pruned_trials_are_read_as_infeasible(tiny_checkpoint_file):
  study = optuna.create_study(sampler=_sampler(tiny_checkpoint_file))

  def objective(trial):
    x = trial.suggest_float('x', 0, 1)
    if trial.number % 3 == 1:
      raise optuna.TrialPruned()
    if trial.number % 3 == 2:
      return float('nan')  # Optuna records a FAIL
    return x
  study.optimize(objective, n_trials=8, catch=())
  states = [t.state for t in study.trials]
  assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.FAIL in states
  space = OptunaProblem.of(study, {'x': FloatDistribution(0, 1)})
  trial = space.completed(study.trials[1], 2)
  assert trial.infeasible and 'pruned' in trial.infeasibility_reason


def test_two_objectives_and_a_constraint(tiny_checkpoint_file):
  def constraints(trial):
    return [trial.params['x'] + trial.params['y'] - 1.2]

  sampler = _sampler(tiny_checkpoint_file)
  sampler._constraints_func = constraints  # pylint: disable=protected-access
  study = optuna.create_study(directions=['minimize', 'minimize'], sampler=sampler)
  study.optimize(lambda t: (t.suggest_float('x', 0, 1),
                            (1 - t.params['x']) ** 2 + t.suggest_float('y', 0, 1)), n_trials=8)
  assert all(t.constraints == {'0': pytest.approx(t.params['x'] + t.params['y'] - 1.2)}
             for t in study.trials)
  space = OptunaProblem.of(study, study.trials[-1].distributions, ['0'])
  problem = space.problem()
  kinds = [m.type for m in problem.metric_information]
  assert kinds.count(vz.MetricType.OBJECTIVE) == 2 and kinds.count(vz.MetricType.SAFETY) == 1
  assert study.best_trials


def _conditional(trial) -> float:
  family = trial.suggest_categorical('family', ['svm', 'tree'])
  if family == 'svm':
    return (math.log10(trial.suggest_float('C', 1e-3, 1e3, log=True)) - 1) ** 2
  return 0.5 + 0.01 * (trial.suggest_int('depth', 1, 20) - 5) ** 2


@pytest.mark.parametrize('mode', ['model', 'random'])
def test_define_by_run_parameters(tiny_checkpoint_file, mode):
  study = optuna.create_study(sampler=_sampler(tiny_checkpoint_file, define_by_run=mode,
                                               define_by_run_from=2))
  study.optimize(_conditional, n_trials=12)
  assert len(study.trials) == 12
  for t in study.trials:
    assert set(t.params) in ({'family', 'C'}, {'family', 'depth'})
  chosen = [set(json.loads(t.system_attrs.get(SHARED_PARAMS_KEY, '{}'))) for t in study.trials]
  children = [c - {'family'} for c in chosen[-6:]]
  if mode == 'model':  # once both families ran, the designer chooses their parameters too
    assert any(children)
  else:  # only the parameters every trial has
    assert not any(children)


def test_the_define_by_run_structure_is_read_off_the_trials():
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  study.optimize(_conditional, n_trials=10)

  def extra(trial):  # a parameter in some trials of both families: no parent
    if trial.number % 2:
      trial.suggest_float('noise', 0, 1)
    return _conditional(trial)
  study.optimize(extra, n_trials=6)
  shared = {'family': CategoricalDistribution(['svm', 'tree'])}
  space, parents = conditional_space(study.get_trials(), shared)
  assert parents == {'C': ('family', ('svm',)), 'depth': ('family', ('tree',))}
  assert set(space) == {'family', 'C', 'depth'}
  problem = OptunaProblem.of(study, space, parents=parents).problem()
  assert problem.search_space.is_conditional


def test_two_processes_on_one_postgres_study_never_repeat_a_configuration(
    postgres_url, tiny_checkpoint_file):
  """A 40-configuration space, 2 worker processes x 10 trials on one RDB storage."""
  optuna.create_study(study_name='shared', storage=postgres_url)
  code = f'''
import optuna
from tests.test_optuna_sampler import _sampler
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name='shared', storage={postgres_url!r},
                          sampler=_sampler({tiny_checkpoint_file!r}))
def objective(trial):
  a = trial.suggest_categorical('a', ['p', 'q', 'r', 's'])
  n = trial.suggest_int('n', 1, 10)
  return (n - 4) ** 2 + 'pqrs'.index(a)
study.optimize(objective, n_trials=10)
'''
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  procs = [subprocess.Popen([sys.executable, '-c', code], env=env, stderr=subprocess.PIPE,
                            text=True) for _ in range(2)]
  for proc in procs:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
  study = optuna.load_study(study_name='shared', storage=postgres_url)
  trials = study.get_trials()
  assert len(trials) == 20
  assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
  assert len({(t.params['a'], t.params['n']) for t in trials}) == 20


def test_the_sampler_pickles_without_its_model(tiny_checkpoint_file):
  import pickle  # pylint: disable=g-import-not-at-top
  sampler = OmniPredSampler(seed=3)
  sampler._surrogates()  # pylint: disable=protected-access  # loads the shipped model
  copy = pickle.loads(pickle.dumps(sampler))
  assert copy._factory is None and copy._seed == 3  # pylint: disable=protected-access
  study = optuna.create_study(sampler=_sampler(tiny_checkpoint_file))
  study.optimize(lambda t: t.suggest_float('x', 0, 1), n_trials=2)
  assert pickle.loads(pickle.dumps(study.sampler))._given_factory is not None  # pylint: disable=protected-access


@pytest.mark.parametrize('seed', range(6))
def test_a_running_trial_keeps_the_parameters_chosen_for_it(tiny_checkpoint_file, seed):
  """Two workers' trials whose relative parameters are computed before either objective
  has asked for one (Optuna computes them at a trial's first `suggest`): the second sees what
  the sampler chose for the first (kept in its system attributes) and takes the other
  configuration left in a 3-configuration space."""
  study = optuna.create_study(sampler=_sampler(tiny_checkpoint_file, seed=seed))

  def suggest(trial):
    return trial.suggest_categorical('a', ['p', 'q', 'r'])
  study.optimize(lambda t: 'pqr'.index(suggest(t)), n_trials=1)
  first, second = study.ask(), study.ask()
  chosen = [first.relative_params['a'], second.relative_params['a']]  # both before a suggest
  assert json.loads(study.trials[1].system_attrs[SHARED_PARAMS_KEY]) == first.relative_params
  assert set(chosen) == {'p', 'q', 'r'} - {study.trials[0].params['a']}
  assert [suggest(first), suggest(second)] == chosen


def test_threads_on_a_journal_storage_never_repeat_a_configuration(tmp_path,
                                                                    tiny_checkpoint_file):
  """n_jobs=2 (two threads, one sampler) on Optuna's journal storage, a 40-configuration
  space: every trial recorded, none repeated."""
  from optuna.storages import JournalStorage  # pylint: disable=g-import-not-at-top
  from optuna.storages.journal import JournalFileBackend  # pylint: disable=g-import-not-at-top
  storage = JournalStorage(JournalFileBackend(str(tmp_path / 'journal.log')))
  study = optuna.create_study(study_name='j', storage=storage,
                              sampler=_sampler(tiny_checkpoint_file))

  def objective(trial):
    a = trial.suggest_categorical('a', ['p', 'q', 'r', 's'])
    n = trial.suggest_int('n', 1, 10)
    return (n - 4) ** 2 + 'pqrs'.index(a)
  study.optimize(objective, n_trials=16, n_jobs=2)
  reloaded = optuna.load_study(study_name='j', storage=storage)
  trials = reloaded.get_trials()
  assert len(trials) == 16 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
  assert len({(t.params['a'], t.params['n']) for t in trials}) == 16


@pytest.mark.parametrize('reuse', [True, False])
def test_a_reused_designer_reads_each_finished_trial_once(tiny_checkpoint_file, reuse):
  sampler = _sampler(tiny_checkpoint_file, reuse_designer=reuse)
  study = optuna.create_study(sampler=sampler)
  study.optimize(lambda t: _suggest_all(t)['x'] ** 2, n_trials=8)
  designers = list(sampler._designers.values())  # pylint: disable=protected-access
  if not reuse:
    assert not designers
    return
  (designer, read), = designers
  assert read == set(range(7))  # every finished trial but the last, each once
  assert len(designer._record.completed) == 7  # pylint: disable=protected-access
