"""Conditional search spaces: OmniPred against random, quasi-random and Eagle, 50 trials.

    python -m benchmarks.conditional                      # both problems, 3 seeds, resumable
    python -m benchmarks.conditional --aggregate          # table + plot from what has run

Problems (each two levels deep: a choice whose branch has a choice with its own children):
- `branches`: a known objective over {linear, tree, net}; the best branch (net, relu) needs its
  own continuous children tuned; the optimum is known, so regret is exact.
- `sklearn_family`: the model family for scikit-learn's diabetes regression data (442 rows;
  error = 1 - R^2 of 3-fold cross-validation): SVR (C, epsilon; kernel rbf -> gamma,
  poly -> degree), random forest, k-NN, ridge, each with its own hyperparameters. Regret:
  error minus the lowest error any run found. (A classification version on digits saturated:
  every designer reached the same accuracy within 50 trials.)

google-vizier 0.1.24's random, quasi-random and Eagle designers refuse conditional spaces
(ValueError at construction). They run here as a Vizier user must run them: on the flattened
space (every parameter at the root), the objective reading only the parameters that the
choices activate. `random` is native (uniform over the tree, `search_space.random_parameters`).
Raw runs: benchmarks/results/raw/conditional/ (git-ignored); table and plot:
benchmarks/results/conditional.md, conditional.png.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import algorithms as vza  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402
from vizier._src.benchmarks.experimenters import experimenter as experimenter_lib  # noqa: E402

from benchmarks import designer_zoo, run_store, study_grid  # noqa: E402
from benchmarks import tuning_studies  # cross-validation helper  # noqa: E402
from designers.study_runner import run_study  # noqa: E402
from vizier_omnipred import search_space  # noqa: E402

RESULTS = run_store.RESULTS  # noqa: E402

RAW = RESULTS / 'raw' / 'conditional'
METRIC = 'error'
TRIALS = 50
SEEDS = (0, 1, 2, 3, 4)
DESIGNERS = ('omnipred', 'random', 'quasi_random', 'eagle')
FLATTENED = ('quasi_random', 'eagle')  # Vizier designers that refuse conditional spaces


def branches_problem() -> vz.ProblemStatement:
  p = vz.ProblemStatement()
  root = p.search_space.root
  root.add_float_param('learning_rate', 1e-4, 1.0, scale_type=vz.ScaleType.LOG)
  family = root.add_categorical_param('family', ['linear', 'tree', 'net'])
  family.select_values(['linear']).add_float_param('l2', 1e-6, 1.0, scale_type=vz.ScaleType.LOG)
  tree = family.select_values(['tree'])
  tree.add_int_param('depth', 1, 16)
  tree.add_categorical_param('criterion', ['gini', 'entropy'])
  net = family.select_values(['net'])
  net.add_int_param('width', 8, 512, scale_type=vz.ScaleType.LOG)
  act = net.add_categorical_param('activation', ['relu', 'tanh'])
  act.select_values(['relu']).add_float_param('dropout', 0.0, 0.8)
  act.select_values(['tanh']).add_float_param('init_scale', 1e-3, 1.0, scale_type=vz.ScaleType.LOG)
  p.metric_information.append(vz.MetricInformation(METRIC, goal=vz.ObjectiveMetricGoal.MINIMIZE))
  p.metadata['title'] = 'model family selection'
  return p


def branches_error(c: dict) -> float:
  """Best: net, relu, dropout 0.35, width 128, learning_rate 1e-2 -> 0.10. Each branch's
  floor: linear 0.40, tree 0.25, net/tanh 0.22, net/relu 0.10."""
  lr = 0.05 * (math.log10(c['learning_rate']) + 2) ** 2
  if c['family'] == 'linear':
    return 0.40 + lr + 0.03 * (math.log10(c['l2']) + 3) ** 2
  if c['family'] == 'tree':
    return 0.25 + lr + 0.004 * (c['depth'] - 9) ** 2 + (0.05 if c['criterion'] == 'gini' else 0)
  width = 0.08 * (math.log2(c['width']) - 7) ** 2
  if c['activation'] == 'relu':
    return 0.10 + lr + width + 1.5 * (c['dropout'] - 0.35) ** 2
  return 0.22 + lr + width + 0.05 * (math.log10(c['init_scale']) + 1.5) ** 2


BRANCHES_OPTIMUM = 0.10


def sklearn_problem() -> vz.ProblemStatement:
  p = vz.ProblemStatement()
  family = p.search_space.root.add_categorical_param(
      'model', ['svr', 'random_forest', 'knn', 'ridge'])
  svr = family.select_values(['svr'])
  svr.add_float_param('svr_C', 1e-2, 1e3, scale_type=vz.ScaleType.LOG)
  svr.add_float_param('epsilon', 1e-3, 1.0, scale_type=vz.ScaleType.LOG)
  kernel = svr.add_categorical_param('kernel', ['rbf', 'poly'])
  kernel.select_values(['rbf']).add_float_param('gamma', 1e-4, 1.0, scale_type=vz.ScaleType.LOG)
  kernel.select_values(['poly']).add_int_param('degree', 2, 4)
  forest = family.select_values(['random_forest'])
  forest.add_int_param('n_estimators', 10, 200, scale_type=vz.ScaleType.LOG)
  forest.add_int_param('max_depth', 2, 20)
  knn = family.select_values(['knn'])
  knn.add_int_param('n_neighbors', 1, 50)
  knn.add_categorical_param('weights', ['uniform', 'distance'])
  family.select_values(['ridge']).add_float_param('alpha', 1e-4, 1e3,
                                                  scale_type=vz.ScaleType.LOG)
  p.metric_information.append(vz.MetricInformation(METRIC, goal=vz.ObjectiveMetricGoal.MINIMIZE))
  p.metadata['title'] = 'model family for diabetes regression'
  return p


class SklearnFamily:
  """1 - R^2 of 3-fold cross-validation on diabetes (features standardised); cached per
  configuration."""

  def __init__(self):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
    self._x, self._y = datasets.load_diabetes(return_X_y=True)
    self._cache: dict[tuple, float] = {}

  def __call__(self, c: dict) -> float:
    key = tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in c.items()))
    if key not in self._cache:
      r2 = tuning_studies._cv(self._model(c), self._x, self._y, 'r2')  # pylint: disable=protected-access
      self._cache[key] = 1.0 - r2
    return self._cache[key]

  @staticmethod
  def _model(c: dict):
    from sklearn import ensemble, linear_model, neighbors, svm  # pylint: disable=g-import-not-at-top
    from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
    from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
    if c['model'] == 'random_forest':
      return ensemble.RandomForestRegressor(n_estimators=int(c['n_estimators']),
                                            max_depth=int(c['max_depth']), random_state=0)
    if c['model'] == 'svr':
      kernel = dict(kernel='rbf', gamma=c['gamma']) if c['kernel'] == 'rbf' else dict(
          kernel='poly', degree=int(c['degree']))
      model = svm.SVR(C=c['svr_C'], epsilon=c['epsilon'], **kernel)
    elif c['model'] == 'knn':
      model = neighbors.KNeighborsRegressor(n_neighbors=int(c['n_neighbors']),
                                            weights=c['weights'])
    else:
      model = linear_model.Ridge(alpha=c['alpha'])
    return make_pipeline(StandardScaler(), model)


PROBLEMS = {'branches': (branches_problem, lambda: branches_error),
            'sklearn_family': (sklearn_problem, SklearnFamily)}


def flatten(problem: vz.ProblemStatement) -> vz.ProblemStatement:
  """Every parameter of the tree at the root (what a designer without conditional support
  needs); the objective then reads only the active ones (`active_configuration`)."""
  flat = vz.ProblemStatement(metric_information=problem.metric_information,
                             metadata=problem.metadata)
  for pc in search_space.all_parameters(problem.search_space).values():
    search_space.add_parameter(flat.search_space.root, pc)
  return flat


def active_configuration(space: vz.SearchSpace, parameters: vz.ParameterDict) -> dict:
  """The configuration a (flat or conditional) trial selects: its choices' active
  parameters, with their values."""
  return search_space.build_parameters(space, lambda pc: parameters[pc.name].value)


class ConditionalExperimenter(experimenter_lib.Experimenter):
  """Evaluates trials of the conditional problem, or of its flattened twin."""

  def __init__(self, problem: vz.ProblemStatement, objective, *, flat: bool):
    self._problem = problem
    self._objective = objective
    self._statement = flatten(problem) if flat else problem

  def problem_statement(self) -> vz.ProblemStatement:
    return self._statement

  def evaluate(self, suggestions) -> None:
    for t in suggestions:
      config = active_configuration(self._problem.search_space, t.parameters)
      t.complete(vz.Measurement({METRIC: float(self._objective(config))}))


class TreeRandomDesigner(vza.Designer):
  """Uniform random configurations of a conditional space (Vizier's RandomDesigner refuses
  conditional spaces)."""

  def __init__(self, problem: vz.ProblemStatement, seed: int | None = None):
    self._space = problem.search_space
    self._rng = np.random.default_rng(seed)

  def update(self, completed, all_active) -> None:
    del completed, all_active

  def suggest(self, count=None):
    return [vz.TrialSuggestion(search_space.random_parameters(self._space, self._rng))
            for _ in range(count or 1)]


def factory(name: str):
  if name == 'random':
    return lambda p, seed=None: TreeRandomDesigner(p, seed=seed)
  return designer_zoo.designer_factory(name)


def raw_path(problem: str, designer: str, seed: int) -> pathlib.Path:
  return RAW / f'{problem}_{designer}_{seed}.json'


def run(problems, designers, seeds) -> None:
  # A raw OmniPred run made with other weights or configs runs again (`designer_zoo.signature_of`).
  # Conditional spaces: the quadratic step's settings are not signed.
  signatures = {(p, d): designer_zoo.signature_of(d, problem=PROBLEMS[p][0]())
                for p in problems for d in designers}
  todo = [(p, d, s) for p in problems for d in designers for s in seeds
          if not run_store.is_done(raw_path(p, d, s), signatures[p, d])]
  bar = tqdm(total=len(todo) * TRIALS, desc='conditional', dynamic_ncols=True)
  objectives, factories = {}, {}
  for problem_name, designer, seed in todo:
    bar.set_postfix_str(f'{designer} {problem_name} seed {seed}')
    make_problem, make_objective = PROBLEMS[problem_name]
    if problem_name not in objectives:
      objectives[problem_name] = make_objective()
    if designer not in factories:
      factories[designer] = factory(designer)
    exp = ConditionalExperimenter(make_problem(), objectives[problem_name],
                                  flat=designer in FLATTENED)
    t0 = time.perf_counter()
    study = run_study(designer, factories[designer], exp, TRIALS, seed=seed, progress=bar)
    path = raw_path(problem_name, designer, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'values': [float(v) for v in study.values(METRIC)],
                                'seconds': time.perf_counter() - t0,
                                'signature': signatures[problem_name, designer]}))
  bar.close()


def aggregate(problems, designers, seeds) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  runs = {}
  for p in problems:
    for d in designers:
      for s in seeds:
        path = raw_path(p, d, s)
        if path.exists():
          runs[p, d, s] = np.minimum.accumulate(np.nan_to_num(
              np.asarray(json.loads(path.read_text())['values']), nan=np.inf))
  lines = ['# Conditional search spaces: regret after 50 trials', '',
           f'Mean (min-max) over seeds {list(seeds)}; lower is better. `branches`: error minus'
           f' the known optimum {BRANCHES_OPTIMUM}; `sklearn_family`: CV error minus the lowest'
           ' error any run found. quasi_random and eagle run on the flattened space (Vizier'
           ' 0.1.24 refuses conditional spaces for them); random samples the tree uniformly.',
           '', '| problem | ' + ' | '.join(designers) + ' | omnipred best? |',
           '|---' * (len(designers) + 2) + '|']
  fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems), 4), squeeze=False)
  for ax, p in zip(axes[0], problems):
    floor = BRANCHES_OPTIMUM if p == 'branches' else min(
        r[-1] for (q, _, _), r in runs.items() if q == p)
    cells, means = [], {}
    for d in designers:
      curves = [runs[p, d, s] - floor for s in seeds if (p, d, s) in runs]
      if not curves:
        cells.append('-')
        continue
      final = np.asarray([c[-1] for c in curves])
      means[d] = final.mean()
      cells.append(f'{final.mean():.4f} ({final.min():.4f}-{final.max():.4f})')
      ax.plot(np.arange(1, TRIALS + 1), np.mean(curves, axis=0), label=d)
    best = ('yes' if 'omnipred' in means and all(means['omnipred'] < v for k, v in means.items()
                                                  if k != 'omnipred') else 'no')
    lines.append(f'| {p} | ' + ' | '.join(cells) + f' | {best} |')
    ax.set(title=p, xlabel='trials', ylabel='regret (mean over seeds)', yscale='log')
    ax.legend()
  return study_grid.write_results(fig, lines, 'conditional')


def main(argv=None) -> int:
  return study_grid.main(__doc__, PROBLEMS, DESIGNERS, SEEDS, run=run, aggregate=aggregate,
                         raw_path=raw_path, argv=argv)


if __name__ == '__main__':
  sys.exit(main())
