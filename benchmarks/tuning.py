"""Tuning benchmark: OmniPred against Vizier's designers on scikit-learn tuning tasks.

    python -m benchmarks.tuning                          # every designer, task and seed
    python -m benchmarks.tuning --designers gp_ucb_pe --shard 0/2   # shards side by side,
    python -m benchmarks.tuning --designers gp_ucb_pe --shard 1/2   # each resumable
    python -m benchmarks.tuning --aggregate              # tables + plots from what has run
    python -m benchmarks.tuning --designers omnipred_search   # one variant beside the rest

The nine tasks of `tuning_tasks.py` (2-10 mixed parameters, cross-validated scores), 40
trials, seeds 0-2 for every designer. Each (designer, task, seed) study runs through Vizier's
BenchmarkRunner (`designers.study_runner.run_study`) and is stored as JSON under
benchmarks/results/raw/tuning/ (ignored by git; GP-UCB-PE's, hours of runs, under
benchmarks/results/archive/tuning/, tracked); an OmniPred run records the hash of its
weights and configs, and one made otherwise runs again. Evaluations are cached per
configuration (`tuning_tasks.EvaluationCache`), shared by designers and reruns.

Normalised regret of a study at trial t: (best_t - y_best) / (y_random - y_best) with the
metric oriented to minimise, where y_best is the best value known on the task (every cached
evaluation of every designer) and y_random the median of 64 fixed random configurations:
0 = the best known, 1 = a typical random draw. Tables go to benchmarks/results/tuning.md,
convergence plots to tuning_convergence.png.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks import designer_zoo, run_store, tuning_tasks  # noqa: E402
from benchmarks.comparisons import log_efficiency, regret_panel, save_grid, win_rate_rows, WIN_RATE_HEADER  # noqa: E402
from designers.study_runner import run_study  # noqa: E402

RESULTS = run_store.RESULTS
RAW = run_store.RAW / 'tuning'
TRIALS = 40
SEEDS = (0, 1, 2)
DESIGNERS = ('omnipred', 'random', 'quasi_random', 'eagle', 'gp_ucb_pe')
MARKS = (10, 20, 40)


def raw_path(designer: str, task: str, seed: int) -> pathlib.Path:
  """Where a study's run is kept: GP-UCB-PE's hours of runs in the tracked archive
  (`run_store.store_for`), the others under raw/."""
  return run_store.store_for(designer) / 'tuning' / f'{designer}_{task}_{seed}.json'


def run_jobs(jobs: list[tuple[str, str, int]], *, trials: int = TRIALS,
             isolate: bool = True, candidates: dict[str, str] | None = None) -> None:
  tasks = tuning_tasks.tasks()
  signatures = signatures_of({(d, t) for d, t, _ in jobs}, tasks, candidates)
  todo = [j for j in jobs if not run_store.is_done(raw_path(*j), signatures[j[:2]])]
  todo = [j for j in todo if not _adopt(j, signatures[j[:2]])]
  factories = {}
  bar = tqdm(total=len(todo) * trials, desc='tuning', dynamic_ncols=True)
  for designer, task, seed in todo:
    bar.set_postfix_str(f'{designer} {task} seed {seed}')
    if isolate and designer in designer_zoo.ISOLATED:  # GP-UCB-PE: one process per study
      process_setup.run_in_own_process('benchmarks.tuning', '--designers', designer,
                                       '--trials', str(trials), '--job', f'{task},{seed}')
      bar.update(trials)
      continue
    if designer not in factories:
      factories[designer] = designer_zoo.designer_factory(designer, candidates)
    exptr = tuning_tasks.TaskExperimenter(tasks[task])
    run = run_study(designer, factories[designer], exptr, trials, seed=seed, progress=bar)
    run_store.write_run(raw_path(designer, task, seed), json.dumps({
        'values': [float(v) for v in run.values(exptr.metric)], 'seconds': run.seconds,
        'completed': run.completed, 'signature': signatures[designer, task]}))
  bar.close()


def signatures_of(pairs, tasks: dict, candidates: dict[str, str] | None = None) -> dict:
  """(designer, task) -> the signature its runs record (`designer_zoo.signature_of`, with the
  task's problem: the quadratic step's settings sign only the all-continuous tasks' runs)."""
  return {(d, t): designer_zoo.signature_of(d, candidates, tasks[t].problem) for d, t in pairs}


def _adopt(job: tuple[str, str, int], signature: str | None) -> bool:
  """Another designer's run of the same task and seed, made as this one would be, copied as
  this one's (`run_store.adopt`)."""
  _, task, seed = job  # any source will do: the same signature is the same run
  return run_store.adopt(raw_path(*job), RAW.glob(f'*_{task}_{seed}.json'), signature)


def references(task: tuning_tasks.TuningStudy) -> tuple[float, float]:
  """(y_best, y_random) of a task, oriented to minimise: the best cached value of every
  designer's evaluations, and the median of the reference draws (evaluated here if new)."""
  exptr = tuning_tasks.TaskExperimenter(task)
  sign = -1.0 if task.problem.metric_information.item().goal.is_maximize else 1.0
  draws = [exptr.score(c) for c in tuning_tasks.reference_configurations(task)]
  values = sign * exptr.cache.values()
  return float(np.nanmin(values)), float(np.nanmedian(sign * np.asarray(draws)))


def stored_runs(designers, tasks: dict, seeds=SEEDS,
                candidates: dict[str, str] | None = None) -> dict[tuple, pathlib.Path]:
  """(designer, task, seed) -> its run made as the designer is now (`signatures_of`)."""
  signatures = signatures_of({(d, t) for d in designers for t in tasks}, tasks, candidates)
  paths = {(d, t, s): run_store.stored(raw_path(d, t, s), signatures[d, t])
           for d in designers for t in tasks for s in seeds}
  return {key: path for key, path in paths.items() if path is not None}


def regrets(designers, tasks: dict, seeds=SEEDS, trials: int = TRIALS,
            candidates: dict[str, str] | None = None) -> dict:
  """(designer, task, seed) -> [trials] normalised regret, for the studies that have run as
  each designer is now (`stored_runs`)."""
  return regrets_of(stored_runs(designers, tasks, seeds, candidates), tasks, trials)


def regrets_of(runs: dict, tasks: dict, trials: int = TRIALS) -> dict:
  """(designer, task, seed) -> run path  ->  the same keys -> [trials] normalised regret.
  y_best also reads the runs' own values: an archived run's evaluations need not be in this
  machine's cache."""
  oriented = {}
  for (d, name, s), path in runs.items():
    goal = tasks[name].problem.metric_information.item().goal
    sign = -1.0 if goal.is_maximize else 1.0
    oriented[(d, name, s)] = sign * np.asarray(json.loads(path.read_text())['values'][:trials],
                                               dtype=float)
  out = {}
  for name in sorted({key[1] for key in oriented}):
    best, rand = references(tasks[name])
    best = min([best] + [float(np.nanmin(v)) for k, v in oriented.items()
                         if k[1] == name and np.isfinite(v).any()])
    for key in (k for k in oriented if k[1] == name):
      v = oriented[key]
      run_best = np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))
      out[key] = np.clip((run_best - best) / max(rand - best, 1e-12), 0, None)
  return out


def aggregate(designers: tuple[str, ...], command: str = '',
              candidates: dict[str, str] | None = None) -> str:
  tasks = tuning_tasks.tasks()
  runs = stored_runs(designers, tasks, candidates=candidates)
  regret = regrets_of(runs, tasks)
  present = [d for d in designers if any(k[0] == d for k in regret)]
  seconds = {d: [] for d in present}
  for key in regret:
    blob = json.loads(runs[key].read_text())
    seconds[key[0]] += [sec for c, sec in zip(blob['completed'], blob['seconds']) if c >= 10]
  lines = [f'Tuning benchmark: {len(tasks)} scikit-learn tasks x seeds {list(SEEDS)}, {TRIALS}'
           ' trials; normalised regret (0 = best value known on the task, 1 = the median of 64'
           ' random configurations), mean over studies.', '',
           '| designer | studies | ' + ' | '.join(f'regret @ {m}' for m in MARKS)
           + ' | median s per trial (10+ done) |', '|---|---|' + '---|' * (len(MARKS) + 1)]
  for d in present:
    studies = [k for k in regret if k[0] == d]
    cells = [f'{np.mean([regret[k][m - 1] for k in studies]):.4f}' for m in MARKS]
    lines.append(f'| {d} | {len(studies)} | ' + ' | '.join(cells)
                 + f' | {np.median(seconds[d]):.3f} |')
  ours = [d for d in present if designer_zoo.is_omnipred(d)]
  rows = win_rate_rows(regret, ours, present, TRIALS)
  if rows:
    lines += ['', f'Win rate at trial {TRIALS}: share of studies (same task and seed) where the'
              ' OmniPred variant\'s regret is lower (ties count half).', '',
              *WIN_RATE_HEADER] + rows
  lines += ['', f'Mean regret at trial {TRIALS} by task (mean over seeds).', '',
            '| task | parameters | ' + ' | '.join(present) + ' |',
            '|---|---|' + '---|' * len(present)]
  for name, task in tasks.items():
    cells = []
    for d in present:
      vals = [regret[k][TRIALS - 1] for k in regret if k[0] == d and k[1] == name]
      cells.append(f'{np.mean(vals):.4f}' if vals else '-')
    lines.append(f'| {name} | {len(task.problem.search_space.parameters)} | '
                 + ' | '.join(cells) + ' |')
  if 'gp_ucb_pe' in present and ours:
    lines += ['', 'Log-efficiency against GP-UCB-PE (Vizier\'s `LogEfficiencyConvergenceCurveComparator`'
              ' on the median regret curve over seeds): > 0 means fewer trials than GP-UCB-PE to'
              ' the same regret (about exp(-score) times as many), < 0 more.', '',
              '| task | ' + ' | '.join(ours) + ' |', '|---|' + '---|' * len(ours)]
    for name in tasks:
      cells = []
      for o in ours:
        pairs = [(regret[(o, name, s)], regret[('gp_ucb_pe', name, s)]) for s in SEEDS
                 if (o, name, s) in regret and ('gp_ucb_pe', name, s) in regret]
        cells.append(f'{log_efficiency([a for a, _ in pairs], [b for _, b in pairs]):+.2f}'
                     if pairs else '-')
      lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  lines += ['', f'Command: `python -m benchmarks.tuning{command}` (then `--aggregate`).']
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / 'tuning.md').write_text(text)
  plot(present, regret, list(tasks))
  return text


def plot(present, regret, task_names) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = ['all tasks'] + task_names
  cols = 5
  rows = (len(panels) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
  for ax, panel in zip(axes.flat, panels):
    regret_panel(ax, regret, present,
                 lambda k, d, panel=panel: k[0] == d and panel in ('all tasks', k[1]),
                 panel, TRIALS)
  save_grid(fig, axes, len(panels), 'normalised regret (mean over seeds)',
            RESULTS / 'tuning_convergence.png')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--designers', default=None, help='comma-separated (default: the table\'s)')
  parser.add_argument('--tasks', default=None, help='comma-separated subset of the tasks')
  parser.add_argument('--seeds', default=None, help='comma-separated subset of the seeds')
  parser.add_argument('--shard', default='0/1', help='i/n: run every n-th job from i')
  parser.add_argument('--trials', type=int, default=TRIALS)
  parser.add_argument('--job', default=None, help='TASK,SEED: run one study here')
  parser.add_argument('--aggregate', action='store_true', help='only write tables and plots')
  parser.add_argument('--candidate', action='append', default=[], metavar='TAG=PATH',
                      help='OmniPred weights to run as variant@TAG (name it in --designers)')
  args = parser.parse_args(argv)
  candidates = designer_zoo.parse_candidates(args.candidate)
  designers = tuple(args.designers.split(',')) if args.designers else DESIGNERS
  if args.job:
    task, seed = args.job.split(',')
    run_jobs([(designers[0], task, int(seed))], trials=args.trials, isolate=False,
             candidates=candidates)
    return 0
  if not args.aggregate:
    names = args.tasks.split(',') if args.tasks else list(tuning_tasks.tasks())
    seeds = [int(s) for s in args.seeds.split(',')] if args.seeds else SEEDS
    jobs = [(d, t, s) for d in designers for t in names for s in seeds]
    i, n = (int(v) for v in args.shard.split('/'))
    t0 = time.perf_counter()
    run_jobs(jobs[i::n], trials=args.trials, candidates=candidates)
    print(f'ran shard {args.shard} in {time.perf_counter() - t0:.0f}s')
  extra = tuple(d for d in designers if d not in DESIGNERS)
  command = f' --designers {",".join(extra)}' if extra else ''
  print(aggregate(DESIGNERS + extra, command, candidates))
  return 0


if __name__ == '__main__':
  sys.exit(main())
