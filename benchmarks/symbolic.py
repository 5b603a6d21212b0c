"""Symbolic-regression benchmark: the shipped transformer (+BFGS) against gplearn and pyoperon.

    python -m benchmarks.symbolic                      # all problems, all methods (resumable)
    python -m benchmarks.symbolic --in-domain 8 --methods ours,ours_no_refine   # a subset
    python -m benchmarks.symbolic --aggregate          # only write the table and the plot

Problems: `--in-domain` held-out formulas from the generator (seeds the training stream never
sees), and a hand-written set of known functions (Branin, Rosenbrock, Booth, Himmelblau and
physics laws) on their usual domains. Each problem has 100 training and 100 test points; every
method fits on the training points only. Metrics on the test points: R2 and Acc_0.1 (at least
95% of points within 10% relative error, as in Kamienny et al. 2022), and wall time.

Methods: `ours` (transformer, 33 candidates, BFGS), `ours_fast` (13 candidates, BFGS capped
at 40 iterations), `ours_no_refine` (the paper's ablation: the model's own constants), `gplearn_same` and `operon_same` (given ours' wall time on that
problem: gplearn grows generation by generation until the budget is spent, pyoperon gets
max_time = the budget rounded up to whole seconds, its smallest unit), and `gplearn_default`
(population 1000, 20 generations, its own time). Everything runs on one thread.

Writes benchmarks/results/symbolic.md and symbolic.png; per-problem JSON under
benchmarks/results/raw/symbolic/ (git-ignored; reruns skip what is there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / 'results'
RAW = RESULTS / 'raw' / 'symbolic'
N_POINTS = 100
METHODS = ('ours', 'ours_fast', 'ours_no_refine', 'gplearn_same', 'operon_same',
           'gplearn_default')
GPLEARN_FUNCTIONS = ('add', 'sub', 'mul', 'div', 'sqrt', 'log', 'abs', 'neg', 'inv', 'sin',
                     'cos', 'tan')
OPERON_SYMBOLS = 'add,sub,mul,div,constant,variable,sin,cos,tan,exp,log,sqrt,square,abs'

# name: (f(x) with x [N, D], domain per input). Constants as in the textbooks.
G_NEWTON = 6.674e-11
KNOWN = {
    'branin': (lambda x: (x[:, 1] - 5.1 / (4 * math.pi**2) * x[:, 0]**2 + 5 / math.pi * x[:, 0]
                          - 6)**2 + 10 * (1 - 1 / (8 * math.pi)) * np.cos(x[:, 0]) + 10,
               [(-5, 10), (0, 15)]),
    'rosenbrock': (lambda x: 100 * (x[:, 1] - x[:, 0]**2)**2 + (1 - x[:, 0])**2, [(-2, 2), (-1, 3)]),
    'booth': (lambda x: (x[:, 0] + 2 * x[:, 1] - 7)**2 + (2 * x[:, 0] + x[:, 1] - 5)**2,
              [(-10, 10), (-10, 10)]),
    'himmelblau': (lambda x: (x[:, 0]**2 + x[:, 1] - 11)**2 + (x[:, 0] + x[:, 1]**2 - 7)**2,
                   [(-5, 5), (-5, 5)]),
    'newton_gravity': (lambda x: G_NEWTON * x[:, 0] * x[:, 1] / x[:, 2]**2,
                       [(1, 5), (1, 5), (1, 5)]),
    'kinetic_energy': (lambda x: 0.5 * x[:, 0] * x[:, 1]**2, [(1, 5), (1, 5)]),
    'pendulum_period': (lambda x: 2 * math.pi * np.sqrt(x[:, 0] / 9.81), [(0.1, 2)]),
    'ideal_gas_pressure': (lambda x: 8.314 * x[:, 0] * x[:, 1] / x[:, 2],
                           [(1, 5), (250, 350), (1, 5)]),
    'projectile_range': (lambda x: x[:, 0]**2 * np.sin(2 * x[:, 1]) / 9.81, [(1, 20), (0.1, 1.4)]),
    'spring_energy': (lambda x: 0.5 * x[:, 0] * x[:, 1]**2, [(1, 10), (-2, 2)]),
    'relativistic_mass': (lambda x: x[:, 0] / np.sqrt(1 - x[:, 1]**2), [(1, 5), (0, 0.9)]),
    'damped_oscillation': (lambda x: x[:, 0] * np.exp(-0.3 * x[:, 1]) * np.cos(2 * x[:, 1]),
                           [(1, 3), (0, 5)]),
    'electric_power': (lambda x: x[:, 0]**2 / x[:, 1], [(1, 10), (1, 10)]),
    'doppler': (lambda x: x[:, 0] * 343 / (343 - x[:, 1]), [(100, 500), (0, 100)]),
    'thin_lens': (lambda x: x[:, 0] * x[:, 1] / (x[:, 0] + x[:, 1]), [(1, 10), (1, 10)]),
    'escape_velocity': (lambda x: np.sqrt(2 * x[:, 0] / x[:, 1]), [(1, 10), (1, 10)]),
    'gaussian_density': (lambda x: np.exp(-x[:, 0]**2 / 2) / math.sqrt(2 * math.pi), [(-3, 3)]),
}


def problems(in_domain: int) -> dict[str, dict]:
  """name -> {x_train, y_train, x_test, y_test, truth}; deterministic."""
  from vizier_omnipred.symbolic.generator import (  # pylint: disable=g-import-not-at-top
      EVAL_SEED_OFFSET, GeneratorConfig, generate, sample_inputs)
  out = {}
  cfg = GeneratorConfig()
  for i in range(in_domain):
    s = generate(EVAL_SEED_OFFSET + 100_000 + i, cfg)
    rng = np.random.default_rng(i)
    # Fresh inputs from the same kind of mixture, rejection-free for this formula.
    for _ in range(100):
      x = sample_inputs(2 * N_POINTS, s.x.shape[1], cfg.max_clusters, rng)
      y = s.formula.evaluate(x)
      if np.all(np.isfinite(y)):
        break
    else:
      x, y = s.x, s.y
    out[f'in_domain_{i:02d}'] = {'x': x, 'y': y, 'truth': str(s.formula)}
  for k, (name, (fn, domain)) in enumerate(KNOWN.items()):
    rng = np.random.default_rng(1000 + k)
    lo, hi = np.array(domain, dtype=float).T
    x = lo + (hi - lo) * rng.random((2 * N_POINTS, len(domain)))
    out[name] = {'x': x, 'y': fn(x), 'truth': name}
  for p in out.values():
    p['x_train'], p['x_test'] = p['x'][:N_POINTS], p['x'][N_POINTS:]
    p['y_train'], p['y_test'] = p['y'][:N_POINTS], p['y'][N_POINTS:]
  return out


def accuracy(y: np.ndarray, pred: np.ndarray, tol: float = 0.1) -> bool:
  """Acc_tol: at least 95% of points within `tol` relative error."""
  if not np.all(np.isfinite(pred)):
    return False
  ok = np.abs(pred - y) <= tol * np.abs(y)
  return bool(np.mean(ok) >= 0.95)


def run_ours(p, model, **config):
  from vizier_omnipred.symbolic.explain import ExplainConfig, explain  # pylint: disable=g-import-not-at-top
  r = explain(p['x_train'], p['y_train'], model=model,
              config=ExplainConfig(test_fraction=0.0, **config))
  return r.predict, r.formula


def run_gplearn(p, budget_s: float | None):
  from gplearn.genetic import SymbolicRegressor  # pylint: disable=g-import-not-at-top
  kw = dict(population_size=1000, function_set=GPLEARN_FUNCTIONS, random_state=0, n_jobs=1)
  if budget_s is None:
    est = SymbolicRegressor(generations=20, **kw)
    est.fit(p['x_train'], p['y_train'])
  else:
    start, gens = time.perf_counter(), 1
    est = SymbolicRegressor(generations=1, warm_start=True, **kw)
    est.fit(p['x_train'], p['y_train'])
    while time.perf_counter() - start < budget_s and gens < 200:
      gens += 1
      est.set_params(generations=gens)
      est.fit(p['x_train'], p['y_train'])
  return est.predict, str(est._program)  # pylint: disable=protected-access


def run_operon(p, budget_s: float):
  from pyoperon.sklearn import SymbolicRegressor  # pylint: disable=g-import-not-at-top
  est = SymbolicRegressor(allowed_symbols=OPERON_SYMBOLS, max_time=max(1, math.ceil(budget_s)),
                          n_threads=1, random_state=0)
  est.fit(p['x_train'], p['y_train'])
  return est.predict, est.get_model_string(est.model_, 4)


def score(p, predict, formula: str, wall: float) -> dict:
  with np.errstate(all='ignore'):
    pred = np.asarray(predict(p['x_test']), dtype=np.float64)
  from vizier_omnipred.symbolic.explain import r2_score  # pylint: disable=g-import-not-at-top
  r2 = r2_score(p['y_test'], pred)
  return {'r2': r2 if math.isfinite(r2) else None, 'acc_0.1': accuracy(p['y_test'], pred),
          'acc_0.001': accuracy(p['y_test'], pred, 1e-3), 'wall_s': wall, 'formula': formula}


def run(args):
  import torch  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.symbolic.model import load_pretrained  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1)
  warnings.filterwarnings('ignore')
  model, _ = load_pretrained(args.checkpoint)
  probs = {k: v for k, v in problems(args.in_domain).items()
           if not args.problems or any(p in k for p in args.problems.split(','))}
  RAW.mkdir(parents=True, exist_ok=True)
  methods = args.methods.split(',')
  jobs = [(name, m) for name in probs for m in methods if not (RAW / f'{name}__{m}.json').exists()]
  for name, method in tqdm(jobs, desc='symbolic', dynamic_ncols=True):
    p = probs[name]
    budget = None
    if method in ('gplearn_same', 'operon_same'):
      ours = RAW / f'{name}__ours.json'
      if not ours.exists():
        raise SystemExit(f'{method} on {name} needs ours first (its wall time is the budget).')
      budget = json.loads(ours.read_text())['wall_s']
    start = time.perf_counter()
    if method == 'ours':
      predict, formula = run_ours(p, model)
    elif method == 'ours_fast':
      predict, formula = run_ours(p, model, num_samples=12, bfgs_max_iter=40)
    elif method == 'ours_no_refine':
      predict, formula = run_ours(p, model, refine=False)
    elif method == 'gplearn_same':
      predict, formula = run_gplearn(p, budget)
    elif method == 'gplearn_default':
      predict, formula = run_gplearn(p, None)
    elif method == 'operon_same':
      predict, formula = run_operon(p, budget)
    else:
      raise SystemExit(f'Unknown method {method!r}; choose from {", ".join(METHODS)}.')
    result = score(p, predict, formula, time.perf_counter() - start)
    result.update(problem=name, method=method, truth=p['truth'], budget_s=budget)
    (RAW / f'{name}__{method}.json').write_text(json.dumps(result, indent=1))


def aggregate() -> str:
  rows = [json.loads(f.read_text()) for f in sorted(RAW.glob('*.json'))]
  if not rows:
    raise SystemExit(f'No results under {RAW}: run the benchmark first.')
  lines = ['| method | set | problems | median R2 | mean R2 (clipped at 0) | Acc_0.1 | Acc_0.001 |'
           ' median wall s |', '|---|---|---|---|---|---|---|---|']
  summary = {}
  for method in METHODS:
    for group in ('in-domain', 'known'):
      rs = [r for r in rows if r['method'] == method
            and (r['problem'].startswith('in_domain')) == (group == 'in-domain')]
      if not rs:
        continue
      r2 = np.array([r['r2'] if r['r2'] is not None else -np.inf for r in rs])
      stats = (len(rs), float(np.median(r2)), float(np.mean(np.clip(r2, 0, 1))),
               float(np.mean([r['acc_0.1'] for r in rs])),
               float(np.mean([r['acc_0.001'] for r in rs])),
               float(np.median([r['wall_s'] for r in rs])))
      summary[(method, group)] = stats
      lines.append(f'| {method} | {group} | {stats[0]} | {stats[1]:.3f} | {stats[2]:.3f} |'
                   f' {stats[3]:.2f} | {stats[4]:.2f} | {stats[5]:.1f} |')
  per_problem = ['', '| problem | ' + ' | '.join(METHODS) + ' |',
                 '|---|' + '---|' * len(METHODS)]
  for name in sorted({r['problem'] for r in rows}):
    cells = []
    for m in METHODS:
      r = next((r for r in rows if r['problem'] == name and r['method'] == m), None)
      if r is None:
        cells.append('')
        continue
      r2 = 'n/a' if r['r2'] is None else f"{max(r['r2'], -9.99):.3f}"
      cells.append(r2 + (' ✓' if r['acc_0.1'] else ''))
    per_problem.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  formulas = ['', '| problem | truth | ours |', '|---|---|---|']
  for r in rows:
    if r['method'] == 'ours':
      formulas.append(f"| {r['problem']} | `{r['truth']}` | `{r['formula']}` |")
  text = '\n'.join(
      ['# Symbolic regression benchmark', '',
       'Made by `python -m benchmarks.symbolic`; one CPU thread per method. R2 and Acc on 100'
       ' test points per problem (each method fit on 100 others). Acc_0.1: share of problems'
       ' where >= 95% of test points are within 10% relative error.', ''] + lines
      + ['', 'Per problem (test R2, ✓ = Acc_0.1):'] + per_problem
      + ['', 'Formulas found by `ours`:'] + formulas) + '\n'
  (RESULTS / 'symbolic.md').write_text(text)
  _plot(summary)
  return text


def _plot(summary):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, group in zip(axes, ('in-domain', 'known')):
    for method in METHODS:
      if (method, group) not in summary:
        continue
      n, _, _, acc, _, wall = summary[(method, group)]
      ax.scatter(wall, acc, s=60, label=method)
      ax.annotate(method, (wall, acc), fontsize=8, xytext=(4, 4), textcoords='offset points')
    ax.set_xscale('log')
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([0.1, 0.2, 0.5, 1, 2, 5, 10], ['0.1', '0.2', '0.5', '1', '2', '5', '10'])
    ax.set_xlabel('median wall seconds per problem (log)')
    ax.set_ylabel('Acc_0.1 (share of problems)')
    ax.set_title(f'{group} problems')
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(RESULTS / 'symbolic.png', dpi=110)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--in-domain', type=int, default=24, help='held-out generated problems')
  parser.add_argument('--methods', default=','.join(METHODS))
  parser.add_argument('--problems', default=None, help='comma-separated name substrings')
  parser.add_argument('--checkpoint', default=None, help='symbolic model (default: shipped)')
  parser.add_argument('--aggregate', action='store_true', help='only write table and plot')
  args = parser.parse_args()
  if not args.aggregate:
    run(args)
  print(aggregate())
  return 0


if __name__ == '__main__':
  sys.exit(main())
