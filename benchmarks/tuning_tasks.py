"""Hyperparameter-tuning tasks for the optimisation benchmark (`benchmarks/tuning.py`).

Nine scikit-learn models on datasets that ship with scikit-learn (nothing is downloaded),
each scored by 3-fold cross-validation: 2 to 10 parameters mixing CATEGORICAL, INTEGER,
DISCRETE, LOG and linear DOUBLE; tree depths, leaf sizes and neighbour counts make plateaus
and ties; SGD and the MLP are rough (a small step can move the score by a lot). The five
studies of the regression benchmark (`tuning_studies.py`) are among them.

Every evaluation is cached on disk per task and configuration (JSON lines under
benchmarks/results/raw/tuning_cache/), so designers, seeds and reruns share them; several
processes may append to one cache.
"""

from __future__ import annotations

import copy
import json
from typing import Sequence

import numpy as np
from vizier import pyvizier as vz
from vizier._src.benchmarks.experimenters import experimenter

from benchmarks import tuning_studies
from benchmarks.tuning_studies import TuningStudy, _cv, _problem
from designers.candidates import parameter_key

CACHE = tuning_studies.RAW / 'tuning_cache'
# Random configurations per task that define a regret of 1 (their median value).
REFERENCE_DRAWS = 64
_REFERENCE_SEED = 12345


def _more_studies() -> list[TuningStudy]:
  from sklearn import datasets, ensemble, linear_model, neural_network, svm  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  maximize, minimize = vz.ObjectiveMetricGoal.MAXIMIZE, vz.ObjectiveMetricGoal.MINIMIZE
  cancer = datasets.load_breast_cancer(return_X_y=True)
  digits = datasets.load_digits(return_X_y=True)
  digits = (digits[0][:500], digits[1][:500])
  diabetes = datasets.load_diabetes(return_X_y=True)

  def svr_space(r):  # smooth, two parameters
    r.add_float_param('C', 1e-2, 1e4, scale_type=vz.ScaleType.LOG)
    r.add_float_param('epsilon', 1e-3, 100.0, scale_type=vz.ScaleType.LOG)

  def sgd_space(r):  # many categories, rough
    r.add_categorical_param('loss', ['hinge', 'log_loss', 'modified_huber', 'perceptron'])
    r.add_categorical_param('penalty', ['l2', 'l1', 'elasticnet'])
    r.add_float_param('alpha', 1e-7, 1.0, scale_type=vz.ScaleType.LOG)
    r.add_float_param('l1_ratio', 0.0, 1.0)
    r.add_categorical_param('learning_rate', ['optimal', 'invscaling', 'adaptive', 'constant'])
    r.add_float_param('eta0', 1e-5, 1.0, scale_type=vz.ScaleType.LOG)

  def mlp_space(r):  # noisy (one fixed initialisation per configuration)
    r.add_int_param('width', 4, 128, scale_type=vz.ScaleType.LOG)
    r.add_int_param('layers', 1, 3)
    r.add_float_param('alpha', 1e-6, 1.0, scale_type=vz.ScaleType.LOG)
    r.add_float_param('learning_rate_init', 1e-4, 0.3, scale_type=vz.ScaleType.LOG)
    r.add_categorical_param('activation', ['relu', 'tanh', 'logistic'])
    r.add_discrete_param('batch_size', [16, 32, 64, 128])

  def forest_space(r):  # ten parameters, integers with plateaus
    r.add_int_param('n_estimators', 5, 60)
    r.add_int_param('max_depth', 1, 20)
    r.add_int_param('min_samples_split', 2, 30)
    r.add_int_param('min_samples_leaf', 1, 30)
    r.add_float_param('max_features', 0.1, 1.0)
    r.add_categorical_param('bootstrap', ['True', 'False'])
    r.add_categorical_param('criterion', ['squared_error', 'friedman_mse', 'poisson'])
    r.add_int_param('max_leaf_nodes', 4, 128, scale_type=vz.ScaleType.LOG)
    r.add_float_param('min_impurity_decrease', 1e-6, 10.0, scale_type=vz.ScaleType.LOG)
    r.add_float_param('ccp_alpha', 1e-6, 100.0, scale_type=vz.ScaleType.LOG)

  def mlp(c):
    return make_pipeline(StandardScaler(), neural_network.MLPClassifier(
        hidden_layer_sizes=(int(c['width']),) * int(c['layers']), alpha=c['alpha'],
        learning_rate_init=c['learning_rate_init'], activation=c['activation'],
        batch_size=int(c['batch_size']), max_iter=40, random_state=0))

  return [
      TuningStudy('svr_diabetes', _problem('support vector regression on diabetes', 'mse',
                                           minimize, svr_space),
                  lambda c: -_cv(make_pipeline(StandardScaler(), svm.SVR(
                      C=c['C'], epsilon=c['epsilon'])), *diabetes, 'neg_mean_squared_error')),
      TuningStudy('sgd_breast_cancer', _problem('sgd classifier on breast_cancer', 'accuracy',
                                                maximize, sgd_space),
                  lambda c: _cv(make_pipeline(StandardScaler(), linear_model.SGDClassifier(
                      loss=c['loss'], penalty=c['penalty'], alpha=c['alpha'],
                      l1_ratio=c['l1_ratio'], learning_rate=c['learning_rate'],
                      eta0=c['eta0'], max_iter=200, tol=1e-3, random_state=0)),
                      *cancer, 'accuracy')),
      TuningStudy('mlp_digits', _problem('mlp on digits', 'accuracy', maximize, mlp_space),
                  lambda c: _cv(mlp(c), *digits, 'accuracy')),
      TuningStudy('forest_diabetes', _problem('random forest on diabetes', 'mse', minimize,
                                              forest_space),
                  lambda c: -_cv(ensemble.RandomForestRegressor(
                      n_estimators=int(c['n_estimators']), max_depth=int(c['max_depth']),
                      min_samples_split=int(c['min_samples_split']),
                      min_samples_leaf=int(c['min_samples_leaf']),
                      max_features=c['max_features'], bootstrap=c['bootstrap'] == 'True',
                      criterion=c['criterion'], max_leaf_nodes=int(c['max_leaf_nodes']),
                      min_impurity_decrease=c['min_impurity_decrease'],
                      ccp_alpha=c['ccp_alpha'], random_state=0, n_jobs=1),
                      *diabetes, 'neg_mean_squared_error')),
  ]


def tasks() -> dict[str, TuningStudy]:
  """name -> task: the regression benchmark's five studies and four more."""
  return {t.name: t for t in tuning_studies.studies() + _more_studies()}


def plain(problem: vz.ProblemStatement, params: vz.ParameterDict) -> dict:
  """Vizier parameters -> the plain values a task's score reads (INTEGERs as int: the
  service hands them back as floats)."""
  out = {}
  for pc in problem.search_space.parameters:
    v = params[pc.name].value
    out[pc.name] = int(round(float(v))) if pc.type == vz.ParameterType.INTEGER else v
  return out


class EvaluationCache:
  """One task's evaluated configurations, on disk (JSON lines), shared by processes."""

  def __init__(self, name: str):
    self.path = CACHE / f'{name}.jsonl'
    self._values: dict[str, float] = {}
    self._offset = 0  # bytes of the file already read
    self._read()

  def _read(self) -> None:
    """Reads what was appended since the last read (by any process), whole lines only."""
    if not self.path.exists():
      return
    with self.path.open('rb') as f:
      f.seek(self._offset)
      tail = f.read()
    complete = tail[:tail.rfind(b'\n') + 1]
    self._offset += len(complete)
    for line in complete.decode().splitlines():
      if line.strip():
        row = json.loads(line)
        self._values[row['key']] = row['y']

  @staticmethod
  def key(params: dict) -> str:
    return json.dumps(parameter_key(params))

  def get(self, params: dict) -> float | None:
    k = self.key(params)
    if k not in self._values:
      self._read()  # another process may have evaluated it
    return self._values.get(k)

  def put(self, params: dict, y: float) -> None:
    k = self.key(params)
    self._values[k] = y
    self.path.parent.mkdir(parents=True, exist_ok=True)
    with self.path.open('a') as f:  # one short line per write: appends do not interleave
      f.write(json.dumps({'key': k, 'params': params, 'y': y}) + '\n')

  def values(self) -> np.ndarray:
    self._read()
    return np.asarray(list(self._values.values()), dtype=np.float64)


class TaskExperimenter(experimenter.Experimenter):
  """A tuning task as a Vizier experimenter: evaluates through the cache."""

  def __init__(self, task: TuningStudy):
    self.task = task
    self.cache = EvaluationCache(task.name)
    self.metric = task.problem.metric_information.item().name

  def problem_statement(self) -> vz.ProblemStatement:
    return copy.deepcopy(self.task.problem)

  def score(self, config: dict) -> float:
    y = self.cache.get(config)
    if y is None:
      y = float(self.task.score(config))
      self.cache.put(config, y)
    return y

  def evaluate(self, suggestions: Sequence[vz.Trial]) -> None:
    for trial in suggestions:
      y = self.score(plain(self.task.problem, trial.parameters))
      if np.isfinite(y):
        trial.complete(vz.Measurement({self.metric: y}))
      else:
        trial.complete(vz.Measurement(), infeasibility_reason='the score is not finite')


def reference_configurations(task: TuningStudy) -> list[dict]:
  """The REFERENCE_DRAWS random configurations whose median value is a regret of 1."""
  return tuning_studies.sample_configurations(
      task.problem, REFERENCE_DRAWS, np.random.default_rng(_REFERENCE_SEED))
