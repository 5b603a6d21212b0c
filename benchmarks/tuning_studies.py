"""Real hyperparameter-tuning studies with mixed parameter types, for the regression benchmark.

Each study tunes a scikit-learn model on a dataset that ships with scikit-learn (nothing is
downloaded): its parameters mix log-scaled and linear DOUBLEs, INTEGERs, DISCRETEs and
CATEGORICALs, and y is a 3-fold cross-validated score. Configurations are drawn uniformly (log
parameters log-uniformly) from a seed; evaluated values are cached under
benchmarks/results/raw/ (git-ignored), since a study costs up to a minute of fitting.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings
from typing import Callable

import attrs
import numpy as np
from vizier import pyvizier as vz

RAW = pathlib.Path(__file__).resolve().parent / 'results' / 'raw'
CV_FOLDS = 3


@attrs.frozen
class TuningStudy:
  """A named problem and the function that scores one configuration."""

  name: str
  problem: vz.ProblemStatement
  score: Callable[[dict], float]


def _problem(title: str, metric: str, goal: vz.ObjectiveMetricGoal,
             add: Callable[[vz.SearchSpaceSelector], None]) -> vz.ProblemStatement:
  p = vz.ProblemStatement()
  add(p.search_space.root)
  p.metric_information.append(vz.MetricInformation(metric, goal=goal))
  p.metadata['title'] = title
  return p


def _cv(model, x, y, scoring) -> float:
  from sklearn.model_selection import cross_val_score  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    return float(np.mean(cross_val_score(model, x, y, cv=CV_FOLDS, scoring=scoring)))


def studies() -> list[TuningStudy]:
  """Five tuning problems over four scikit-learn datasets."""
  from sklearn import datasets, ensemble, linear_model, neighbors, svm, tree  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  maximize, minimize = vz.ObjectiveMetricGoal.MAXIMIZE, vz.ObjectiveMetricGoal.MINIMIZE
  cancer = datasets.load_breast_cancer(return_X_y=True)
  wine = datasets.load_wine(return_X_y=True)
  digits = datasets.load_digits(return_X_y=True)
  digits = (digits[0][:600], digits[1][:600])
  diabetes = datasets.load_diabetes(return_X_y=True)

  def svc_space(r):
    r.add_float_param('C', 1e-3, 1e3, scale_type=vz.ScaleType.LOG)
    r.add_float_param('gamma', 1e-5, 10.0, scale_type=vz.ScaleType.LOG)
    r.add_categorical_param('kernel', ['rbf', 'poly', 'sigmoid'])

  def tree_space(r):
    r.add_int_param('max_depth', 1, 20)
    r.add_int_param('min_samples_leaf', 1, 30)
    r.add_categorical_param('criterion', ['gini', 'entropy'])
    r.add_float_param('ccp_alpha', 1e-5, 0.3, scale_type=vz.ScaleType.LOG)

  def knn_space(r):
    r.add_int_param('n_neighbors', 1, 60)
    r.add_categorical_param('weights', ['uniform', 'distance'])
    r.add_discrete_param('p', [1, 2, 3])

  def enet_space(r):
    r.add_float_param('alpha', 1e-4, 100.0, scale_type=vz.ScaleType.LOG)
    r.add_float_param('l1_ratio', 0.0, 1.0)
    r.add_categorical_param('fit_intercept', ['True', 'False'])

  def hgb_space(r):
    r.add_float_param('learning_rate', 1e-3, 1.0, scale_type=vz.ScaleType.LOG)
    r.add_int_param('max_iter', 10, 100)
    r.add_int_param('max_leaf_nodes', 2, 64)
    r.add_float_param('l2_regularization', 1e-6, 10.0, scale_type=vz.ScaleType.LOG)

  return [
      TuningStudy('svm_breast_cancer', _problem('svm on breast_cancer', 'accuracy', maximize,
                                                svc_space),
                  lambda c: _cv(make_pipeline(StandardScaler(), svm.SVC(
                      C=c['C'], gamma=c['gamma'], kernel=c['kernel'], max_iter=20000)),
                      *cancer, 'accuracy')),
      TuningStudy('tree_wine', _problem('decision tree on wine', 'accuracy', maximize,
                                        tree_space),
                  lambda c: _cv(tree.DecisionTreeClassifier(
                      max_depth=int(c['max_depth']), min_samples_leaf=int(c['min_samples_leaf']),
                      criterion=c['criterion'], ccp_alpha=c['ccp_alpha'], random_state=0),
                      *wine, 'accuracy')),
      TuningStudy('knn_digits', _problem('knn on digits', 'accuracy', maximize, knn_space),
                  lambda c: _cv(neighbors.KNeighborsClassifier(
                      n_neighbors=int(c['n_neighbors']), weights=c['weights'], p=float(c['p'])),
                      *digits, 'accuracy')),
      TuningStudy('elasticnet_diabetes', _problem('elastic net on diabetes', 'mse', minimize,
                                                  enet_space),
                  lambda c: -_cv(linear_model.ElasticNet(
                      alpha=c['alpha'], l1_ratio=c['l1_ratio'],
                      fit_intercept=c['fit_intercept'] == 'True', max_iter=5000),
                      *diabetes, 'neg_mean_squared_error')),
      TuningStudy('hgb_diabetes', _problem('gradient boosting on diabetes', 'mse', minimize,
                                           hgb_space),
                  lambda c: -_cv(ensemble.HistGradientBoostingRegressor(
                      learning_rate=c['learning_rate'], max_iter=int(c['max_iter']),
                      max_leaf_nodes=int(c['max_leaf_nodes']),
                      l2_regularization=c['l2_regularization'], random_state=0),
                      *diabetes, 'neg_mean_squared_error')),
  ]


def sample_configurations(problem: vz.ProblemStatement, n: int,
                          rng: np.random.Generator) -> list[dict]:
  """n uniform configurations (log parameters log-uniform), as plain dicts."""
  rows = []
  for _ in range(n):
    row = {}
    for pc in problem.search_space.parameters:
      if pc.type == vz.ParameterType.CATEGORICAL:
        row[pc.name] = str(rng.choice(pc.feasible_values))
      elif pc.type == vz.ParameterType.DISCRETE:
        row[pc.name] = float(rng.choice(pc.feasible_values))
      elif pc.type == vz.ParameterType.INTEGER:
        lo, hi = pc.bounds
        row[pc.name] = int(rng.integers(lo, hi + 1))
      else:
        lo, hi = pc.bounds
        if pc.scale_type == vz.ScaleType.LOG:
          row[pc.name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        else:
          row[pc.name] = float(rng.uniform(lo, hi))
    rows.append(row)
  return rows


def evaluated(study: TuningStudy, n: int, seed: int, progress=None) -> tuple[list[dict], np.ndarray]:
  """n configurations of `study` and their scores; cached in benchmarks/results/raw/."""
  path = RAW / f'tuning_{study.name}_{n}_{seed}.json'
  if path.exists():
    blob = json.loads(path.read_text())
    return blob['rows'], np.asarray(blob['y'])
  rows = sample_configurations(study.problem, n, np.random.default_rng([seed, n]))
  y = []
  for row in rows:
    y.append(study.score(row))
    if progress is not None:
      progress.update(1)
  RAW.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({'rows': rows, 'y': y}))
  return rows, np.asarray(y)


def numeric_features(problem: vz.ProblemStatement, rows: list[dict]) -> np.ndarray:
  """What the baselines read: log10 of log parameters, numbers as they are, one-hot
  categories. [n, k] float64."""
  cols = []
  for pc in problem.search_space.parameters:
    values = [r[pc.name] for r in rows]
    if pc.type == vz.ParameterType.CATEGORICAL:
      for cat in pc.feasible_values:
        cols.append([1.0 if v == cat else 0.0 for v in values])
    elif pc.type == vz.ParameterType.DOUBLE and pc.scale_type == vz.ScaleType.LOG:
      cols.append(np.log10(np.asarray(values, dtype=np.float64)))
    else:
      cols.append(np.asarray(values, dtype=np.float64))
  return np.asarray(cols, dtype=np.float64).T
