"""OmniPredSampler against Optuna's own samplers, through Optuna's API.

    python -m benchmarks.optuna_samplers              # every sampler, task and seed (resumable)
    python -m benchmarks.optuna_samplers --aggregate  # tables + plot from what has run

Tasks: the nine scikit-learn tuning tasks of `tuning_tasks.py` written as Optuna objectives
(DOUBLE -> suggest_float, LOG -> log=True, INTEGER -> suggest_int, DISCRETE and CATEGORICAL ->
suggest_categorical), two shifted BBOB functions (Ellipsoidal and Rastrigin, 4-D), and one
define-by-run conditional task (`family_digits`: the model family first, then that family's
own parameters). Samplers: OmniPredSampler (shipped weights), TPESampler (Optuna's default),
GPSampler and RandomSampler, each seeded; `omnipred_rebuilt` builds a fresh designer at every
trial instead of keeping the study's; on the conditional task also OmniPredSampler with
Optuna's random fallback for define-by-run parameters. 40 trials, seeds 0-2.

Normalised regret as in `tuning.py`: (best_t - y_best) / (y_random - y_best), oriented to
minimise; y_best the best value known on the task (every cached evaluation), or 0 on BBOB
(its optimum); y_random the median of 64 fixed random configurations. Seconds per trial are
the sampler's (a trial's wall time minus its objective's). Raw runs under
benchmarks/results/raw/optuna/ (ignored by git); evaluations share the tuning cache.
Tables go to benchmarks/results/optuna.md, the convergence plot to optuna_convergence.png.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import zlib

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402

from benchmarks import run_store, tuning_studies, tuning_tasks  # noqa: E402
from benchmarks.comparisons import regret_panel, save_grid, win_rate_rows, WIN_RATE_HEADER  # noqa: E402
from designers.optuna_sampler import OmniPredSampler, OmniPredSamplerConfig  # noqa: E402
from designers.study_runner import shifted_bbob  # noqa: E402

RESULTS = run_store.RESULTS
RAW = run_store.RAW / 'optuna'
TRIALS = 40
SEEDS = (0, 1, 2)
SAMPLERS = ('omnipred', 'tpe', 'gp', 'random', 'omnipred_rebuilt')
CONDITIONAL_SAMPLERS = ('omnipred', 'omnipred_random_dbr', 'tpe', 'random')
BBOB_TASKS = {'bbob_Ellipsoidal_4': ('Ellipsoidal', 4), 'bbob_Rastrigin_4': ('Rastrigin', 4)}
CONDITIONAL_TASK = 'family_digits'
MARKS = (10, 20, 40)
REFERENCE_DRAWS = 64
_REFERENCE_SEED = 12345

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
  if name == 'omnipred':
    return OmniPredSampler(seed=seed)
  if name == 'omnipred_random_dbr':
    return OmniPredSampler(seed=seed, config=OmniPredSamplerConfig(define_by_run='random'))
  if name == 'omnipred_rebuilt':  # a fresh designer per trial (`reuse_designer=False`)
    return OmniPredSampler(seed=seed, config=OmniPredSamplerConfig(reuse_designer=False))
  if name == 'tpe':
    return optuna.samplers.TPESampler(seed=seed)
  if name == 'gp':
    return optuna.samplers.GPSampler(seed=seed)
  if name == 'random':
    return optuna.samplers.RandomSampler(seed=seed)
  raise ValueError(f'Unknown sampler {name!r}.')


# --- tasks --------------------------------------------------------------------------------
class Task:
  """An Optuna objective with a cache, a direction and the reference draws of its regret.
  `evaluating_s` sums the seconds spent evaluating configurations (Optuna samples inside
  the objective, at its first `suggest`: a trial's wall time minus this is the sampler's)."""

  name: str
  maximize: bool
  evaluating_s: float = 0.0

  def timed(self, fn, *args):
    start = time.perf_counter()
    try:
      return fn(*args)
    finally:
      self.evaluating_s += time.perf_counter() - start

  def objective(self, trial: optuna.Trial) -> float:
    raise NotImplementedError

  def references(self) -> tuple[float, float]:
    """(y_best, y_random), oriented to minimise."""
    raise NotImplementedError

  def sign(self) -> float:
    return -1.0 if self.maximize else 1.0


def _suggest(trial: optuna.Trial, pc: vz.ParameterConfig):
  if pc.type == vz.ParameterType.CATEGORICAL:
    return trial.suggest_categorical(pc.name, list(pc.feasible_values))
  if pc.type == vz.ParameterType.DISCRETE:
    return trial.suggest_categorical(pc.name, [float(v) for v in pc.feasible_values])
  lo, hi = pc.bounds
  log = pc.scale_type == vz.ScaleType.LOG
  if pc.type == vz.ParameterType.INTEGER:
    return trial.suggest_int(pc.name, int(lo), int(hi), log=log)
  return trial.suggest_float(pc.name, float(lo), float(hi), log=log)


class TuningTask(Task):
  """A task of `tuning_tasks`, evaluated through its cache (shared with tuning.py)."""

  def __init__(self, study: tuning_tasks.TuningStudy):
    self.name = study.name
    self._exptr = tuning_tasks.TaskExperimenter(study)
    self._study = study
    self.maximize = study.problem.metric_information.item().goal.is_maximize

  def objective(self, trial):
    config = {pc.name: _suggest(trial, pc) for pc in self._study.problem.search_space.parameters}
    return self.timed(self._exptr.score, config)

  def references(self):
    draws = [self._exptr.score(c) for c in tuning_tasks.reference_configurations(self._study)]
    values = self.sign() * self._exptr.cache.values()
    return float(np.nanmin(values)), float(np.nanmedian(self.sign() * np.asarray(draws)))


class BBOBTask(Task):
  """A shifted BBOB function (the seed moves its optimum, value 0) on [-5, 5]^dim."""

  maximize = False

  def __init__(self, name: str, function: str, dim: int, seed: int):
    self.name, self._dim = name, dim
    self._exptr = shifted_bbob(function, dim, seed)

  def _value(self, x) -> float:
    trial = vz.Trial(parameters={f'x{i}': float(v) for i, v in enumerate(x)})
    self._exptr.evaluate([trial])
    return float(trial.final_measurement.metrics['bbob_eval'].value)

  def objective(self, trial):
    return self.timed(self._value,
                      [trial.suggest_float(f'x{i}', -5.0, 5.0) for i in range(self._dim)])

  def references(self):
    rng = np.random.default_rng(_REFERENCE_SEED)
    draws = [self._value(rng.uniform(-5, 5, self._dim)) for _ in range(REFERENCE_DRAWS)]
    return 0.0, float(np.median(draws))


class FamilyTask(Task):
  """Define-by-run: a classifier family for 500 digits, then that family's own parameters
  (3-fold accuracy, maximised)."""

  name = CONDITIONAL_TASK
  maximize = True

  def __init__(self):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
    x, y = datasets.load_digits(return_X_y=True)
    self._data = (x[:500], y[:500])
    self._cache = tuning_tasks.EvaluationCache(self.name)

  def _model(self, c: dict):
    from sklearn import linear_model, neighbors, svm, tree  # pylint: disable=g-import-not-at-top
    from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
    from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
    family = c['family']
    if family == 'svm':
      return make_pipeline(StandardScaler(), svm.SVC(C=c['svm_C'], gamma=c['svm_gamma']))
    if family == 'knn':
      return neighbors.KNeighborsClassifier(n_neighbors=c['knn_k'], weights=c['knn_weights'])
    if family == 'tree':
      return tree.DecisionTreeClassifier(max_depth=c['tree_depth'],
                                         min_samples_leaf=c['tree_leaf'], random_state=0)
    return make_pipeline(StandardScaler(), linear_model.LogisticRegression(
        C=c['logistic_C'], max_iter=2000))

  def _config(self, trial) -> dict:
    family = trial.suggest_categorical('family', ['svm', 'knn', 'tree', 'logistic'])
    c = {'family': family}
    if family == 'svm':
      c['svm_C'] = trial.suggest_float('svm_C', 1e-3, 1e3, log=True)
      c['svm_gamma'] = trial.suggest_float('svm_gamma', 1e-5, 1.0, log=True)
    elif family == 'knn':
      c['knn_k'] = trial.suggest_int('knn_k', 1, 60)
      c['knn_weights'] = trial.suggest_categorical('knn_weights', ['uniform', 'distance'])
    elif family == 'tree':
      c['tree_depth'] = trial.suggest_int('tree_depth', 1, 20)
      c['tree_leaf'] = trial.suggest_int('tree_leaf', 1, 30)
    else:
      c['logistic_C'] = trial.suggest_float('logistic_C', 1e-4, 1e2, log=True)
    return c

  def _score(self, c: dict) -> float:
    y = self._cache.get(c)
    if y is None:
      y = tuning_studies._cv(self._model(c), *self._data, 'accuracy')  # pylint: disable=protected-access
      self._cache.put(c, y)
    return y

  def objective(self, trial):
    return self.timed(self._score, self._config(trial))

  def references(self):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=_REFERENCE_SEED))
    draws = [self._score(self._config(study.ask())) for _ in range(REFERENCE_DRAWS)]
    return (float(np.nanmin(self.sign() * self._cache.values())),
            float(np.median(self.sign() * np.asarray(draws))))


def task_for(name: str, seed: int) -> Task:
  if name in BBOB_TASKS:
    return BBOBTask(name, *BBOB_TASKS[name], seed)
  if name == CONDITIONAL_TASK:
    return FamilyTask()
  return TuningTask(tuning_tasks.tasks()[name])


def jobs() -> list[tuple[str, str, int]]:
  flat = list(tuning_tasks.tasks()) + list(BBOB_TASKS)
  out = [(s, t, seed) for seed in SEEDS for t in flat for s in SAMPLERS]
  out += [(s, CONDITIONAL_TASK, seed) for seed in SEEDS for s in CONDITIONAL_SAMPLERS]
  return out


def raw_path(sampler: str, task: str, seed: int) -> pathlib.Path:
  return RAW / f'{sampler}_{task}_{seed}.json'


# --- runs ---------------------------------------------------------------------------------
def run(sampler: str, task_name: str, seed: int, bar) -> None:
  task = task_for(task_name, seed)
  evaluating, ends = [], []

  def done(*_):
    ends.append(time.perf_counter())
    evaluating.append(task.evaluating_s)
    bar.update(1)

  study = optuna.create_study(direction='maximize' if task.maximize else 'minimize',
                              sampler=make_sampler(sampler, seed))
  begin = time.perf_counter()
  study.optimize(task.objective, n_trials=TRIALS, callbacks=[done])
  walls, evaluations = np.diff([begin] + ends), np.diff([0.0] + evaluating)
  values = [t.value if t.value is not None else float('nan') for t in study.trials]
  path = raw_path(sampler, task_name, seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({'values': values,
                              'sampler_seconds': [float(w - o) for w, o in
                                                  zip(walls, evaluations)]}))


def run_all(todo: list[tuple[str, str, int]]) -> None:
  todo = [j for j in todo if not raw_path(*j).exists()]
  bar = tqdm(total=len(todo) * TRIALS, desc='optuna', dynamic_ncols=True)
  for sampler, task, seed in todo:
    bar.set_postfix_str(f'{sampler} {task} seed {seed}')
    run(sampler, task, seed, bar)
  bar.close()


# --- tables ---------------------------------------------------------------------------------
def regrets() -> dict:
  """(sampler, task, seed) -> [TRIALS] normalised regret, for the runs on disk."""
  out, refs = {}, {}
  for sampler, name, seed in jobs():
    path = raw_path(sampler, name, seed)
    if not path.exists():
      continue
    task = task_for(name, seed)
    key = (name, seed) if name in BBOB_TASKS else name
    if key not in refs:
      refs[key] = task.references()
    best, rand = refs[key]
    v = task.sign() * np.asarray(json.loads(path.read_text())['values'][:TRIALS], dtype=float)
    run_best = np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))
    out[(sampler, name, seed)] = np.clip((run_best - best) / max(rand - best, 1e-12), 0, None)
  return out


def _table(regret: dict, samplers, tasks, title: str) -> list[str]:
  present = [s for s in samplers if any(k[0] == s and k[1] in tasks for k in regret)]
  lines = [title, '', '| sampler | studies | ' + ' | '.join(f'regret @ {m}' for m in MARKS)
           + ' | median sampler s per trial (trials 30-40) |',
           '|---|---|' + '---|' * (len(MARKS) + 1)]
  for s in present:
    keys = [k for k in regret if k[0] == s and k[1] in tasks]
    seconds = [sec for k in keys
               for sec in json.loads(raw_path(*k).read_text())['sampler_seconds'][29:]]
    cells = [f'{np.mean([regret[k][m - 1] for k in keys]):.4f}' for m in MARKS]
    lines.append(f'| {s} | {len(keys)} | ' + ' | '.join(cells)
                 + f' | {np.median(seconds):.3f} |')
  sub = {k: v for k, v in regret.items() if k[1] in tasks}
  rows = win_rate_rows(sub, [s for s in present if s.startswith('omnipred')], present, TRIALS)
  if rows:
    lines += ['', f'Win rate at trial {TRIALS} (same task and seed; ties count half).', '',
              *WIN_RATE_HEADER] + rows
  lines += ['', f'Mean regret at trial {TRIALS} by task (mean over seeds).', '',
            '| task | ' + ' | '.join(present) + ' |', '|---|' + '---|' * len(present)]
  for name in tasks:
    cells = []
    for s in present:
      vals = [regret[k][TRIALS - 1] for k in regret if k[0] == s and k[1] == name]
      cells.append(f'{np.mean(vals):.4f}' if vals else '-')
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return lines


def aggregate() -> str:
  regret = regrets()
  flat = list(tuning_tasks.tasks()) + list(BBOB_TASKS)
  lines = _table(regret, SAMPLERS, flat,
                 f'Through Optuna\'s API: {len(flat)} tasks (9 scikit-learn tuning tasks, 2 BBOB '
                 f'functions) x seeds {list(SEEDS)}, {TRIALS} trials; normalised regret (0 = best'
                 ' value known, 1 = the median of 64 random configurations), mean over studies.')
  lines += [''] + _table(regret, CONDITIONAL_SAMPLERS, [CONDITIONAL_TASK],
                         f'Define-by-run conditional task `{CONDITIONAL_TASK}` (a family, then its'
                         ' own parameters); omnipred_random_dbr: Optuna\'s random fallback for the'
                         ' define-by-run parameters instead of the model.')
  lines += ['', 'Command: `python -m benchmarks.optuna_samplers` (then `--aggregate`).']
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / 'optuna.md').write_text(text)
  plot(regret, flat)
  return text


def plot(regret: dict, flat: list[str]) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [('tuning tasks', SAMPLERS, [t for t in flat if t not in BBOB_TASKS])]
  panels += [(t, SAMPLERS, [t]) for t in BBOB_TASKS]
  panels += [(CONDITIONAL_TASK, CONDITIONAL_SAMPLERS, [CONDITIONAL_TASK])]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.0), squeeze=False)
  for ax, (title, samplers, tasks) in zip(axes.flat, panels):
    regret_panel(ax, regret, samplers, lambda k, s, tasks=tasks: k[0] == s and k[1] in tasks,
                 title, TRIALS)
  axes.flat[-1].legend(fontsize=7)  # the conditional task's samplers differ from the first's
  save_grid(fig, axes, len(panels), 'normalised regret (mean over seeds)',
            RESULTS / 'optuna_convergence.png')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--samplers', default=None, help='comma-separated subset')
  parser.add_argument('--tasks', default=None, help='comma-separated subset')
  parser.add_argument('--shard', default='0/1', help='i/n: run every n-th job from i')
  parser.add_argument('--aggregate', action='store_true', help='only write tables and the plot')
  args = parser.parse_args(argv)
  if not args.aggregate:
    todo = jobs()
    if args.samplers:
      todo = [j for j in todo if j[0] in args.samplers.split(',')]
    if args.tasks:
      todo = [j for j in todo if j[1] in args.tasks.split(',')]
    i, n = map(int, args.shard.split('/'))
    # Shards take jobs in a fixed shuffled order: in the table's order every n-th job would
    # be one sampler's, and the samplers differ in cost by a hundred times.
    todo = sorted(todo, key=lambda j: zlib.crc32(repr(j).encode()))
    run_all(todo[i::n])
  print(aggregate())
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
