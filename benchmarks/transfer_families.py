"""Families of related studies for the transfer benchmarks (`transfer.py`, and the
`transfer` set of `regression.py`): the same scikit-learn model tuned on four datasets that
ship with scikit-learn, one BBOB function in four instances; each study's prior studies are
its family's others, each PRIOR_TRIALS random trials (a user's earlier sweeps). The control's
prior studies come from another family (`CONTROL`)."""

from __future__ import annotations

import numpy as np
from vizier import pyvizier as vz

from benchmarks import tuning_studies, tuning_tasks

PRIOR_TRIALS = 30
_PRIOR_SEED = 777
DATASETS = ('breast_cancer', 'wine', 'digits', 'iris')
FAMILIES = ('svm', 'knn', 'hgb', 'ellipsoidal')
# Each left-out study is run with its own family's other studies as priors ('related'), and
# with another family's ('unrelated', the control).
CASES = ('related', 'unrelated')
# The unrelated control: each scikit-learn family reads another's studies (they share no
# parameter); the Ellipsoidal studies read three instances of Rastrigin on the same four
# parameters, its optimum elsewhere (every parameter shared: misleading prior studies, which
# the designer's mixture pools into the study's trials).
CONTROL = {'svm': 'knn', 'knn': 'hgb', 'hgb': 'svm', 'ellipsoidal': 'rastrigin'}
# BBOB instances: (shift of the optimum in each coordinate, output scale, output offset).
_INSTANCES = ((0.0, 1.0, 0.0), (0.4, 3.0, 10.0), (-0.3, 0.5, -5.0), (0.6, 2.0, 100.0))
# Each BBOB family's optimum before the instance's shift: a draw from U(-3, 3)^4 of this seed.
_OPTIMUM_SEED = {'ellipsoidal': 4, 'rastrigin': 5}


def _data(name: str):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  x, y = getattr(datasets, f'load_{name}')(return_X_y=True)
  return (x[:500], y[:500]) if name == 'digits' else (x, y)


def _sklearn_study(family: str, dataset: str) -> tuning_studies.TuningStudy:
  from sklearn import ensemble, neighbors, svm  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  maximize = vz.ObjectiveMetricGoal.MAXIMIZE
  data = _data(dataset)
  if family == 'svm':
    def space(r):
      r.add_float_param('C', 1e-3, 1e3, scale_type=vz.ScaleType.LOG)
      r.add_float_param('gamma', 1e-5, 10.0, scale_type=vz.ScaleType.LOG)
      r.add_categorical_param('kernel', ['rbf', 'poly', 'sigmoid'])
    score = lambda c: tuning_studies._cv(make_pipeline(StandardScaler(), svm.SVC(  # pylint: disable=protected-access
        C=c['C'], gamma=c['gamma'], kernel=c['kernel'], max_iter=20000)), *data, 'accuracy')
  elif family == 'knn':
    def space(r):
      r.add_int_param('n_neighbors', 1, 60)
      r.add_categorical_param('weights', ['uniform', 'distance'])
      r.add_discrete_param('p', [1, 2, 3])
    score = lambda c: tuning_studies._cv(neighbors.KNeighborsClassifier(  # pylint: disable=protected-access
        n_neighbors=int(c['n_neighbors']), weights=c['weights'], p=float(c['p'])),
        *data, 'accuracy')
  else:
    def space(r):
      r.add_float_param('learning_rate', 1e-3, 1.0, scale_type=vz.ScaleType.LOG)
      r.add_int_param('max_iter', 10, 100)
      r.add_int_param('max_leaf_nodes', 2, 64)
      r.add_float_param('l2_regularization', 1e-6, 10.0, scale_type=vz.ScaleType.LOG)
    score = lambda c: tuning_studies._cv(ensemble.HistGradientBoostingClassifier(  # pylint: disable=protected-access
        learning_rate=c['learning_rate'], max_iter=int(c['max_iter']),
        max_leaf_nodes=int(c['max_leaf_nodes']), l2_regularization=c['l2_regularization'],
        random_state=0), *data, 'accuracy')
  problem = tuning_studies._problem(f'{family} on {dataset}', 'accuracy', maximize, space)  # pylint: disable=protected-access
  return tuning_studies.TuningStudy(f'transfer_{family}_{dataset}', problem, score)


def _bbob_study(name: str, k: int) -> tuning_studies.TuningStudy:
  from vizier._src.benchmarks.experimenters.synthetic import bbob as functions  # pylint: disable=g-import-not-at-top
  shift, scale, offset = _INSTANCES[k]
  base = np.random.default_rng(_OPTIMUM_SEED[name]).uniform(-3, 3, 4)
  function = getattr(functions, name.capitalize())

  def space(r):
    for i in range(4):
      r.add_float_param(f'x{i}', -5.0, 5.0)
  problem = tuning_studies._problem(f'{name} instance', 'value',  # pylint: disable=protected-access
                                    vz.ObjectiveMetricGoal.MINIMIZE, space)
  score = lambda c: scale * float(function(
      np.asarray([c[f'x{i}'] for i in range(4)]) - base - shift)) + offset
  return tuning_studies.TuningStudy(f'transfer_{name}_{k}', problem, score)


def family(name: str) -> list[tuning_studies.TuningStudy]:
  """The studies of one of FAMILIES, or of a control's prior family ('rastrigin')."""
  if name in _OPTIMUM_SEED:
    return [_bbob_study(name, k) for k in range(len(_INSTANCES))]
  return [_sklearn_study(name, d) for d in DATASETS]


def prior_trials(study: tuning_studies.TuningStudy) -> list[vz.Trial]:
  """The study's PRIOR_TRIALS random trials (a user's earlier sweep), evaluated once."""
  exptr = tuning_tasks.TaskExperimenter(study)
  configs = tuning_studies.sample_configurations(study.problem, PRIOR_TRIALS,
                                                 np.random.default_rng(_PRIOR_SEED))
  out = []
  for i, config in enumerate(configs):
    trial = vz.Trial(id=i + 1, parameters=config)
    out.append(trial.complete(vz.Measurement({exptr.metric: exptr.score(config)})))
  return out


def cases() -> list[tuple[str, str, str]]:
  """(case, left-out study, prior family): every study of every family with its own family's
  other studies, and the control."""
  out = []
  for fam in FAMILIES:
    for study in family(fam):
      out.append((CASES[0], study.name, fam))
      if fam in CONTROL:
        out.append((CASES[1], study.name, CONTROL[fam]))
  return out


def priors(case: str, left_out: str, prior_family: str):
  studies = [s for s in family(prior_family) if s.name != left_out]
  if case == 'unrelated':
    studies = studies[:3]
  return [(s.name, s.problem, prior_trials(s)) for s in studies]
