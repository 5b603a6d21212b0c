"""Several objectives: OmniPred (EHVI) against NSGA-II, Vizier's GP-bandit and random, 50 trials.

    python -m benchmarks.multi_objective                   # 3 problems x 3 seeds, resumable
    python -m benchmarks.multi_objective --aggregate       # table + plot from what has run

Problems (every objective minimised):
- `zdt1` (2 objectives, 4-D) and `dtlz2` (3 objectives, 6-D), written out below (Vizier's own
  ZDT/DTLZ experimenters need the `optproblems` package, which the pinned stack lacks);
- `bbob_pair`: Vizier's `MultiObjectiveExperimenter` over two shifted BBOB functions
  (Sphere and Rastrigin, 4-D, optima at different points).

Score: the hypervolume of the trials' Pareto front after 50 trials, each objective scaled so
that the worst and the best value over 1000 uniform points are 0 and 1 (the reference point is
that worst corner: any point a random search might find counts; 1.0 = the box a random
search's best corner spans, more is better than that). NSGA-II runs with population 20, so
that it evolves within 50 trials (Vizier's default of 50 makes it random search there).
`omnipred` samples the objectives independently (the designer's default), `omnipred_joint` by
the chain rule (`joint_objectives=True`). Raw runs: benchmarks/results/raw/multi_objective/
(git-ignored);
table and plot: benchmarks/results/multi_objective.md, multi_objective.png.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import pyvizier as vz  # noqa: E402
from vizier._src.benchmarks.experimenters import multiobjective_experimenter  # noqa: E402
from vizier._src.benchmarks.experimenters import numpy_experimenter  # noqa: E402

from benchmarks import designer_zoo, run_store, study_grid  # noqa: E402
from designers import hypervolume  # noqa: E402
from designers.study_runner import run_study, shifted_bbob  # noqa: E402

RESULTS = run_store.RESULTS  # noqa: E402

RAW = RESULTS / 'raw' / 'multi_objective'
TRIALS = 50
SEEDS = (0, 1, 2)
DESIGNERS = ('omnipred', 'omnipred_joint', 'nsga2', 'gp_bandit', 'random')
NSGA2_POPULATION = 20  # evolves within 50 trials (the default 50 would be random search there)
REFERENCE_POINTS = 1000  # uniform points that fix each problem's reference point


def zdt1(x: np.ndarray) -> np.ndarray:
  g = 1.0 + 9.0 * x[1:].sum() / (len(x) - 1)
  return np.array([x[0], g * (1.0 - np.sqrt(x[0] / g))])


def dtlz2(x: np.ndarray, m: int = 3) -> np.ndarray:
  g = np.sum((x[m - 1:] - 0.5) ** 2)
  angles = x[:m - 1] * np.pi / 2
  out = []
  for i in range(m):
    f = 1.0 + g
    f *= np.prod(np.cos(angles[:m - 1 - i]))
    if i > 0:
      f *= np.sin(angles[m - 1 - i])
    out.append(f)
  return np.asarray(out)


def _unit_problem(dim: int, metrics: list[str]) -> vz.ProblemStatement:
  p = vz.ProblemStatement()
  for i in range(dim):
    p.search_space.root.add_float_param(f'x{i}', 0.0, 1.0)
  for name in metrics:
    p.metric_information.append(vz.MetricInformation(name, goal=vz.ObjectiveMetricGoal.MINIMIZE))
  return p


def _vector_experimenter(fn, dim: int, metrics: list[str]):
  problem = _unit_problem(dim, metrics)
  return numpy_experimenter.MultiObjectiveNumpyExperimenter(
      lambda x: fn(np.asarray(x, dtype=np.float64)), problem)


def make_problem(name: str, seed: int):
  """-> (experimenter, metric names)."""
  if name == 'zdt1':
    return _vector_experimenter(zdt1, 4, ['f1', 'f2']), ['f1', 'f2']
  if name == 'dtlz2':
    return _vector_experimenter(dtlz2, 6, ['f1', 'f2', 'f3']), ['f1', 'f2', 'f3']
  if name == 'bbob_pair':
    exptr = multiobjective_experimenter.MultiObjectiveExperimenter({
        'sphere': shifted_bbob('Sphere', 4, seed + 100),
        'rastrigin': shifted_bbob('Rastrigin', 4, seed + 200)})
    return exptr, ['sphere', 'rastrigin']
  raise ValueError(f'Unknown problem {name!r}.')


PROBLEMS = ('zdt1', 'dtlz2', 'bbob_pair')


def factory(name: str):
  if name == 'nsga2':
    from vizier._src.algorithms.evolution import nsga2  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: nsga2.NSGA2Designer(p, population_size=NSGA2_POPULATION,
                                                    seed=seed)
  if name == 'gp_bandit':
    import jax  # pylint: disable=g-import-not-at-top
    from vizier._src.algorithms.designers import gp_bandit  # pylint: disable=g-import-not-at-top
    return lambda p, seed=None: gp_bandit.VizierGPBandit(p, rng=jax.random.PRNGKey(seed or 0))
  return designer_zoo.designer_factory(name)


def raw_path(problem: str, designer: str, seed: int) -> pathlib.Path:
  return RAW / f'{problem}_{designer}_{seed}.json'


def reference(problem: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(worst, best) value of each (minimised) objective over uniform points: the HV
  reference and the other corner of the unit box."""
  exptr, metrics = make_problem(problem, seed)
  space = exptr.problem_statement().search_space
  rng = np.random.default_rng(0)
  trials = []
  for _ in range(REFERENCE_POINTS):
    params = {pc.name: float(rng.uniform(*pc.bounds)) for pc in space.parameters}
    trials.append(vz.Trial(parameters=params))
  exptr.evaluate(trials)
  values = np.asarray([[t.final_measurement.metrics[m].value for m in metrics] for t in trials])
  return values.max(axis=0), values.min(axis=0)


def run(problems, designers, seeds) -> None:
  # A raw OmniPred run made with other weights or configs runs again (`designer_zoo.signature_of`).
  # Every problem has several objectives, so the quadratic step's settings are not signed.
  statements = {p: make_problem(p, 0)[0].problem_statement() for p in problems}
  signatures = {(p, d): designer_zoo.signature_of(d, problem=statements[p])
                for p in problems for d in designers}
  todo = [(p, d, s) for p in problems for d in designers for s in seeds
          if not run_store.is_done(raw_path(p, d, s), signatures[p, d])]
  bar = tqdm(total=len(todo) * TRIALS, desc='multi-objective', dynamic_ncols=True)
  factories = {}
  for problem, designer, seed in todo:
    bar.set_postfix_str(f'{designer} {problem} seed {seed}')
    if designer not in factories:
      factories[designer] = factory(designer)
    exptr, metrics = make_problem(problem, seed)
    t0 = time.perf_counter()
    study = run_study(designer, factories[designer], exptr, TRIALS, seed=seed, progress=bar)
    values = [[float(t.final_measurement.metrics[m].value) if t.final_measurement else np.nan
               for m in metrics] for t in study.trials]
    path = raw_path(problem, designer, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'values': values, 'metrics': metrics,
                                'seconds': time.perf_counter() - t0,
                                'signature': signatures[problem, designer]}))
  bar.close()


def hypervolume_curve(values: np.ndarray, corners: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
  """HV of the first t trials' front, t = 1..n (minimised objectives scaled by `corners`,
  (worst, best) -> (0, 1); NaN rows skipped)."""
  worst, best = corners
  points = (worst - np.asarray(values, dtype=np.float64)) / (worst - best)
  out = []
  for t in range(1, len(points) + 1):
    p = points[:t]
    p = p[np.all(np.isfinite(p), axis=1)]
    out.append(hypervolume.hypervolume(p, np.zeros(p.shape[1])) if len(p) else 0.0)
  return np.asarray(out)


def aggregate(problems, designers, seeds) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  lines = ['# Several objectives: hypervolume after 50 trials', '',
           f'Mean (min-max) over seeds {list(seeds)}; higher is better. Each objective scaled'
           ' so that its worst and best value over 1000 uniform points are 0 and 1; the'
           ' reference point is the worst corner. NSGA-II: population 20.', '',
           '| problem | ' + ' | '.join(designers) + ' | omnipred > nsga2 | omnipred vs gp |',
           '|---' * (len(designers) + 3) + '|']
  fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 4), squeeze=False)
  for ax, problem in zip(axes[0], problems):
    finals, cells = {}, []
    for d in designers:
      curves = {}
      for s in seeds:
        path = raw_path(problem, d, s)
        if path.exists():
          curves[s] = hypervolume_curve(json.loads(path.read_text())['values'],
                                        reference(problem, s))
      if not curves:
        cells.append('-')
        continue
      finals[d] = {s: c[-1] for s, c in curves.items()}
      final = np.asarray(list(finals[d].values()))
      partial = f', {len(final)} of {len(seeds)} seeds' if len(final) < len(seeds) else ''
      cells.append(f'{final.mean():.4g} ({final.min():.4g}-{final.max():.4g}{partial})')
      ax.plot(np.arange(1, TRIALS + 1), np.mean(list(curves.values()), axis=0), label=d)

    def ratio(other):  # on the seeds both have run
      common = sorted(set(finals.get('omnipred', {})) & set(finals.get(other, {})))
      if not common:
        return None
      return (np.mean([finals['omnipred'][s] for s in common])
              / np.mean([finals[other][s] for s in common]), len(common))

    vs_nsga = vs_gp = '-'
    if ratio('nsga2'):
      vs_nsga = 'yes' if ratio('nsga2')[0] > 1 else 'no'
    if ratio('gp_bandit'):
      r, n = ratio('gp_bandit')
      vs_gp = f'{r:.2f}x' + (f' ({n} seed{"s" if n > 1 else ""})' if n < len(seeds) else '')
    lines.append(f'| {problem} | ' + ' | '.join(cells) + f' | {vs_nsga} | {vs_gp} |')
    ax.set(title=problem, xlabel='trials', ylabel='hypervolume (mean over seeds)')
    ax.legend()
  return study_grid.write_results(fig, lines, 'multi_objective')


def main(argv=None) -> int:
  return study_grid.main(__doc__, PROBLEMS, DESIGNERS, SEEDS, run=run, aggregate=aggregate,
                         raw_path=raw_path, argv=argv)


if __name__ == '__main__':
  sys.exit(main())
