"""BBOB benchmark: OmniPred against Vizier's designers on shifted BBOB functions.

    python -m benchmarks.bbob --preset quick              # minutes: 3 functions, 4-D, 2 seeds
    python -m benchmarks.bbob --preset full --shard 0/2   # run shards in parallel processes,
    python -m benchmarks.bbob --preset full --shard 1/2   # each resumable
    python -m benchmarks.bbob --preset full --aggregate   # tables + plots from what has run
    python -m benchmarks.bbob --preset seed0              # the full pairs, seed 0, no GP
    python -m benchmarks.bbob --preset seed1              # ... and at seed 1
    python -m benchmarks.bbob --preset quadratic          # the full pairs with the quadratic
                                                          # step, GP-UCB-PE from bbob_full.md
    python -m benchmarks.bbob --preset quadratic_pooled   # the step's settings over seeds 0-7
    python -m benchmarks.bbob --preset latency            # every designer in one process
    python -m benchmarks.bbob --preset memory --designers omnipred   # peak RSS, 100 trials
    python -m benchmarks.bbob --preset long150            # zero-shot vs LoRA at 150 trials
    python -m benchmarks.bbob --preset seed0 --candidate new=PATH.pt   # a checkpoint
                                                          # beside the shipped one

Every (designer, function, dim, seed) study runs through Vizier's BenchmarkRunner (see
`designers.study_runner`) and is stored as JSON under benchmarks/results/raw/ (ignored by git;
GP-UCB-PE's, hours of runs, under benchmarks/results/archive/, tracked: `run_store`), so
shards can run side by side and an interrupted run resumes; an OmniPred run records a hash of
the weights it read and of its configs, and one made otherwise runs again (the old one kept
beside it), unless another designer's run of the study was made the same way: that one is
copied (`run_store.adopt`; a setting made the default keeps its runs). Aggregation writes
benchmarks/results/bbob_<preset>.md and convergence/latency PNGs (after a shard, only where
this machine holds the runs of every row the committed table has). `--candidate TAG=PATH` adds
every OmniPred variant of the preset once more as `<variant>@TAG`, reading the checkpoint at
PATH (a pretraining run's model.pt): the same studies, side by side in the same tables.

Normalised simple regret of a study at trial t: (best_t - f_opt) / (f_median - f_opt), where
f_opt is the lowest of f(shift), a multi-start L-BFGS-B and every value a designer observed (the
unshifted optimum is not at 0 for every function: `bbob_reference.reference`) and f_median is
the median of f over 2000 uniform points: 1 ~ a typical random point, 0 = the optimum.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import resource
import sys
import time

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks.bbob_reference import reference  # noqa: E402
from benchmarks.comparisons import log_efficiency, save_grid, win_rate_rows, WIN_RATE_HEADER  # noqa: E402
from benchmarks.designer_zoo import (  # noqa: E402
    ISOLATED, OMNIPRED_VARIANTS, designer_factory, is_omnipred, parse_candidates, signature_of)
from benchmarks import run_store  # noqa: E402
from benchmarks.run_store import ARCHIVED, RESULTS, is_done, store_for  # noqa: E402
from designers.candidates import parameter_key  # noqa: E402
from designers.study_runner import run_study, shifted_bbob  # noqa: E402

# The full preset's 8 functions (x 4-D and 8-D: 16 pairs), shared by the seed presets.
FULL_FUNCTIONS = ('Sphere', 'Ellipsoidal', 'Rastrigin', 'BuecheRastrigin', 'AttractiveSector',
                  'StepEllipsoidal', 'RosenbrockRotated', 'Weierstrass')

PRESETS = {
    'quick': dict(functions=('Sphere', 'Rastrigin', 'Ellipsoidal'), dims=(4,), seeds=(0, 1),
                  trials=30, designers=('omnipred', 'random', 'quasi_random', 'gp_ucb_pe')),
    'full': dict(functions=FULL_FUNCTIONS,
                 dims=(4, 8), seeds=(0, 1, 2, 3, 4), trials=50,
                 designers=('omnipred', 'omnipred_lora', 'random', 'quasi_random', 'eagle',
                            'cmaes', 'gp_ucb_pe')),
    # The full preset's 16 (function, dim) pairs at seed 0, without the hours GP-UCB-PE takes:
    # a check of a new model against the cheap baselines.
    'seed0': dict(functions=FULL_FUNCTIONS,
                  dims=(4, 8), seeds=(0,), trials=50,
                  designers=('omnipred', 'omnipred_lora', 'random', 'quasi_random', 'eagle')),
    # The same pairs at seed 1: a second look when two models' seed0 numbers differ.
    'seed1': dict(functions=FULL_FUNCTIONS,
                  dims=(4, 8), seeds=(1,), trials=50,
                  designers=('omnipred', 'omnipred_lora', 'random', 'quasi_random', 'eagle')),
    # Speed: every designer in one process, one after the other, on the same study.
    'latency': dict(functions=('Rastrigin',), dims=(4,), seeds=(0,), trials=60,
                    designers=('omnipred', 'omnipred_lora', 'omnipred_budget', 'gp_ucb_pe', 'random',
                               'quasi_random', 'eagle', 'cmaes')),
    # Memory: peak RSS of a 100-trial 8-D study; run one designer per process (--designers).
    'memory': dict(functions=('Rastrigin',), dims=(8,), seeds=(0,), trials=100,
                   designers=('omnipred', 'omnipred_lora')),
    # Longer studies: zero-shot against test-time LoRA at 150 trials (4 functions, both dims).
    'long150': dict(functions=('Sphere', 'Rastrigin', 'StepEllipsoidal', 'RosenbrockRotated'),
                    dims=(4, 8), seeds=(0,), trials=150, compare_at=150,
                    designers=('omnipred', 'omnipred_lora')),
    # The full preset's pairs and seeds with the local quadratic model's step's settings
    # against the LM alone; GP-UCB-PE from `bbob_full.md`'s committed means where its runs are
    # not here (`reference`: hours of GP runs the full preset already made).
    'quadratic': dict(functions=FULL_FUNCTIONS, dims=(4, 8), seeds=(0, 1, 2, 3, 4), trials=50,
                      designers=('omnipred_lm', 'omnipred_quadratic', 'omnipred_quadratic_every2',
                                 'omnipred_quadratic_cross', 'omnipred_quadratic_ppc125',
                                 'omnipred_quadratic_shrink', 'omnipred_quadratic_confident',
                                 'omnipred_quadratic_confident25', 'random', 'quasi_random'),
                      reference=('full', 'gp_ucb_pe')),
    # Seeds the quadratic step's settings were not chosen on: the shrinking box and the
    # confident coordinates (both best on the quadratic preset's seeds for Ellipsoidal 8-D)
    # against the plain step, and random.
    'quadratic_heldout': dict(functions=FULL_FUNCTIONS, dims=(4, 8), seeds=(5, 6, 7), trials=50,
                              designers=('omnipred_quadratic', 'omnipred_quadratic_shrink',
                                         'omnipred_quadratic_confident',
                                         'omnipred_quadratic_confident25',
                                         'random', 'quasi_random')),
    # Both seed sets pooled (0-4, where the step's settings were chosen, and the held-out
    # 5-7): 128 studies per designer, the measurement a setting of the step is decided on.
    'quadratic_pooled': dict(functions=FULL_FUNCTIONS, dims=(4, 8), seeds=tuple(range(8)),
                             trials=50,
                             designers=('omnipred', 'omnipred_lm',
                                        'omnipred_quadratic_fit05', 'omnipred_quadratic_lowest',
                                        'omnipred_quadratic_switch',
                                        'omnipred_quadratic_lowest_fallback', 'random',
                                        'quasi_random'),
                             reference=('full', 'gp_ucb_pe'),
                             seed_sets={'0-4 (settings chosen)': (0, 1, 2, 3, 4),
                                        '5-7 (held out)': (5, 6, 7)}),
    # Seeds no setting of the step was read on (8-11): the plain step against the lowest
    # trials with the nearest as fallback, whose rule was found on seed 7.
    'quadratic_fresh': dict(functions=FULL_FUNCTIONS, dims=(4, 8), seeds=(8, 9, 10, 11),
                            trials=50,
                            designers=('omnipred', 'omnipred_quadratic_lowest_fallback',
                                       'random', 'quasi_random'),
                            reference=('full', 'gp_ucb_pe')),
    # The two functions where the fallback lost on seeds 0-11 (AttractiveSector 8-D, one study;
    # StepEllipsoidal 4-D), on six more seeds: seed noise or the rule.
    'quadratic_disputed': dict(functions=('AttractiveSector', 'StepEllipsoidal'), dims=(4, 8),
                               seeds=tuple(range(12, 18)), trials=50,
                               designers=('omnipred', 'omnipred_quadratic_lowest_fallback'),
                               reference=('full', 'gp_ucb_pe')),
    # The seed0 pairs suggested 8 at a time (suggest(count=8)), against seed0's one at a time.
    'batch8': dict(functions=FULL_FUNCTIONS, dims=(4, 8), seeds=(0,), trials=50, batch=8,
                   designers=('omnipred', 'random', 'quasi_random')),
}
# GP-UCB-PE takes ~5-16 s per suggestion on 2 cores: in the full preset it runs these seeds.
GP_SEEDS = {'quick': (0, 1), 'full': (0, 1, 2), 'seed0': (0,), 'seed1': (1,), 'latency': (0,),
            'long150': (0,), 'memory': (0,), 'batch8': (0,), 'quadratic': (0, 1, 2),
            'quadratic_heldout': (), 'quadratic_pooled': (), 'quadratic_fresh': (),
            'quadratic_disputed': ()}


def jobs_for(preset: str, designers: tuple[str, ...]) -> list[tuple]:
  p = PRESETS[preset]
  out = []
  for d in designers:
    seeds = GP_SEEDS[preset] if d == 'gp_ucb_pe' else p['seeds']
    out += [(d, f, dim, s) for f in p['functions'] for dim in p['dims'] for s in seeds]
  return out


# Presets that run the same studies (one at a time, 50 trials, the full functions) share one
# store: a seed-0 run made by `--preset full` is the `seed0` table's too.
SHARED_STORE = {'full': 'pairs50', 'seed0': 'pairs50', 'seed1': 'pairs50', 'quadratic': 'pairs50',
                'quadratic_heldout': 'pairs50', 'quadratic_pooled': 'pairs50',
                'quadratic_fresh': 'pairs50', 'quadratic_disputed': 'pairs50'}


def raw_path(preset, designer, function, dim, seed) -> pathlib.Path:
  return (store_for(designer) / SHARED_STORE.get(preset, preset)
          / f'{designer}_{function}_{dim}_{seed}.json')




def run_jobs(preset: str, jobs: list[tuple], *, isolate: bool = True,
             candidates: dict[str, str] | None = None) -> None:
  p = PRESETS[preset]
  signatures = {d: signature_of(d, candidates) for d in {j[0] for j in jobs}}
  todo = [j for j in jobs if not is_done(raw_path(preset, *j), signatures[j[0]])]
  todo = [j for j in todo if not _adopt(preset, j, signatures[j[0]])]
  stale = [j for j in todo if raw_path(preset, *j).exists()]
  if stale:
    print(f'{len(stale)} raw run(s) were made with other weights or configs (or do not say'
          f' which): running them again, the old ones kept beside, e.g.'
          f' {raw_path(preset, *stale[0]).name}')
  factories = {}
  bar = tqdm(total=len(todo) * p['trials'], desc=f'bbob {preset}', dynamic_ncols=True)
  for designer, function, dim, seed in todo:
    bar.set_postfix_str(f'{designer} {function} {dim}-D seed {seed}')
    if isolate and designer in ISOLATED:
      process_setup.run_in_own_process('benchmarks.bbob', '--preset', preset, '--designers',
                                       designer, '--job', f'{function},{dim},{seed}')
      bar.update(p['trials'])
      continue
    if designer not in factories:
      factories[designer] = designer_factory(designer, candidates)
    run = run_study(designer, factories[designer], shifted_bbob(function, dim, seed),
                    p['trials'], seed=seed, batch_size=p.get('batch', 1), progress=bar)
    run_store.write_run(raw_path(preset, designer, function, dim, seed), json.dumps({
        'values': [float(v) for v in run.values()], 'seconds': run.seconds,
        'completed': run.completed, 'splits': run.splits, 'signature': signatures[designer],
        'duplicates': len(run.trials) - len({parameter_key(t.parameters) for t in run.trials}),
        'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
  bar.close()


def _adopt(preset: str, job: tuple, signature: str | None) -> bool:
  """Another designer's run of the same study and seed in this store, made as this one would
  be, copied as this one's (`run_store.adopt`)."""
  _, function, dim, seed = job
  path = raw_path(preset, *job)  # any source will do: the same signature is the same run
  return run_store.adopt(path, path.parent.glob(f'*_{function}_{dim}_{seed}.json'), signature)


def normalised(values, f_opt: float, f_med: float) -> np.ndarray:
  """A study's values -> its normalised simple regret after each trial (0 = f_opt, 1 =
  f_med; a failed trial's NaN counts as no improvement)."""
  v = np.asarray(values, dtype=float)
  best = np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))
  return np.clip((best - f_opt) / max(f_med - f_opt, 1e-12), 0, None)


def stored_runs(preset: str, designers: tuple[str, ...],
                candidates: dict[str, str] | None = None) -> dict[tuple, pathlib.Path]:
  """job -> the raw (or archived) run of it made as its designer is now (`signature_of`)."""
  signatures = {d: signature_of(d, candidates) for d in designers}
  paths = {job: run_store.stored(raw_path(preset, *job), signatures[job[0]])
           for job in jobs_for(preset, designers)}
  return {job: path for job, path in paths.items() if path is not None}


def aggregate(preset: str, designers: tuple[str, ...], command: str = '',
              candidates: dict[str, str] | None = None) -> str:
  p = PRESETS[preset]
  marks = [m for m in (10, 25, 50, 100, 150) if m <= p['trials']]
  regret: dict = {}  # (designer, function, dim, seed) -> [trials] normalised regret
  latency: dict = {}  # designer -> list of (completed, seconds)
  rss: dict = {}
  blobs = {job: json.loads(path.read_text())
           for job, path in stored_runs(preset, designers, candidates).items()}
  refs = {}
  for (d, f, dim, s), blob in blobs.items():
    f_opt, f_med = refs.get((f, dim, s)) or reference(f, dim, s)
    refs[(f, dim, s)] = (min(f_opt, np.nanmin(blob['values'])), f_med)
  for job, blob in blobs.items():
    d, f, dim, s = job
    f_opt, f_med = refs[(f, dim, s)]
    regret[job] = normalised(blob['values'], f_opt, f_med)
    latency.setdefault(d, []).extend(zip(blob['completed'], blob['seconds']))
    rss[d] = max(rss.get(d, 0.0), blob['peak_rss_mb'])
  present = [d for d in designers if d in latency]
  lines = [f'Shifted BBOB, preset `{preset}`: {len(p["functions"])} functions x dims '
           f'{list(p["dims"])} x seeds {list(p["seeds"])}'
           + (f' (GP-UCB-PE: seeds {list(GP_SEEDS[preset])}), ' if 'gp_ucb_pe' in present else ', ')
           + f'{p["trials"]} trials, '
           'normalised simple regret (0 = optimum, 1 = median random point), mean over studies.',
           '', '| designer | studies | ' + ' | '.join(f'regret @ {m}' for m in marks) + ' |',
           '|---|---|' + '---|' * len(marks)]
  for d in present:
    studies = [k for k in regret if k[0] == d]
    cells = [f'{np.mean([regret[k][m - 1] for k in studies]):.4f}' for m in marks]
    lines.append(f'| {d} | {len(studies)} | ' + ' | '.join(cells) + ' |')

  if p.get('seed_sets'):
    lines += seed_set_rows(p['seed_sets'], regret, present, p['trials'])

  if p.get('batch', 1) > 1:
    lines += ['', f'Suggested {p["batch"]} at a time. Repeated configurations within a study, '
              'summed over its studies: ' + ', '.join(
                  f'{d} {sum(b.get("duplicates", 0) for k, b in blobs.items() if k[0] == d)}'
                  for d in present) + '.']
  at = p.get('compare_at', min(50, p['trials']))  # the trial the per-pair tables compare at
  ours = [d for d in present if is_omnipred(d)]
  # Every variant against every baseline; the default config also against the other variants.
  rows = win_rate_rows(regret, ours, present, at,
                       skip=lambda o, d: is_omnipred(d) and o != 'omnipred')
  if rows:
    lines += ['', f'Win rate at trial {at}: share of studies (same function, dim and seed) where '
              'the OmniPred variant\'s regret is lower (ties count half).', '',
              *WIN_RATE_HEADER] + rows

  lines += ['', f'Mean regret at trial {at} by (function, dim); bold = an OmniPred variant beats '
            'both random and quasi-random (mean over seeds).', '',
            '| function | dim | ' + ' | '.join(present) + ' |', '|---|---|' + '---|' * len(present)]
  beat = {o: 0 for o in ours}
  total = {o: 0 for o in ours}
  for f in p['functions']:
    for dim in p['dims']:
      means = {}
      for d in present:
        vals = [regret[k][at - 1] for k in regret if k[0] == d and k[1] == f and k[2] == dim]
        seeds = GP_SEEDS[preset] if d == 'gp_ucb_pe' else p['seeds']
        means[d] = np.mean(vals) if len(vals) == len(seeds) else np.nan
      # '-': a pair the designer did not run at every one of its seeds (no mean of a part)
      cells = [f'{means[d]:.4f}' if np.isfinite(means[d]) else '-' for d in present]
      for o in ours:
        if all(k in means and np.isfinite(means[k]) for k in (o, 'random', 'quasi_random')):
          total[o] += 1
          if means[o] < min(means['random'], means['quasi_random']):
            beat[o] += 1
            cells[present.index(o)] = f'**{cells[present.index(o)]}**'
      lines.append(f'| {f} | {dim} | ' + ' | '.join(cells) + ' |')
  if 'gp_ucb_pe' in present and ours:
    lines += ['', 'Log-efficiency against GP-UCB-PE (Vizier\'s `LogEfficiencyConvergenceCurveComparator`'
              ' on the median regret curve over the seeds both ran): > 0 means fewer trials than'
              ' GP-UCB-PE to the same regret, < 0 more.', '',
              '| function | dim | ' + ' | '.join(ours) + ' |', '|---|---|' + '---|' * len(ours)]
    for f in p['functions']:
      for dim in p['dims']:
        cells = []
        for o in ours:
          pairs = [(regret[k], regret[('gp_ucb_pe',) + k[1:]]) for k in regret
                   if k[0] == o and k[1] == f and k[2] == dim and ('gp_ucb_pe',) + k[1:] in regret]
          cells.append(f'{log_efficiency([a for a, _ in pairs], [b for _, b in pairs]):+.2f}'
                       if pairs else '-')
        lines.append(f'| {f} | {dim} | ' + ' | '.join(cells) + ' |')
  if p.get('reference') and ours:
    lines += reference_rows(p, regret, ours, at, refs)
  elif 'gp_ucb_pe' in present and ours:
    lines += gp_rows(preset, regret, ours, at)
  lines.append('')
  for o in ours:
    if total[o]:
      lines.append(f'{o} beats random and quasi-random on {beat[o]}/{total[o]} '
                   f'(function, dim) pairs at trial {at}.')

  buckets = [(0, 10), (10, 25), (25, 45), (45, 56), (56, 100)]
  lines += ['', 'Latency: median seconds per suggest+evaluate step by completed trials, and '
            'peak RSS of the process, as measured in the processes that ran the studies above '
            '(not simultaneously: the 2-core machine ran other jobs meanwhile, so compare '
            'with care; `--preset latency` runs every designer in one process).', '',
            '| designer | ' + ' | '.join(f'{a}-{b - 1} done' for a, b in buckets) + ' | peak RSS MB |',
            '|---|' + '---|' * (len(buckets) + 1)]
  for d in present:
    cells = []
    for a, b in buckets:
      vals = [s for c, s in latency[d] if a <= c < b]
      cells.append(f'{np.median(vals):.3f}' if vals else '-')
    lines.append(f'| {d} | ' + ' | '.join(cells) + f' | {rss[d]:.0f} |')
  lines += split_table(blobs, present)
  lines += ['', f'Command: `python -m benchmarks.bbob --preset {preset}{command}` (then'
            ' `--aggregate`).']
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / f'bbob_{preset}.md').write_text(text)
  plot(preset, present, regret, latency)
  return text


# A committed table's means print 4 decimals: below this a mean reads 0.0000.
TABLE_RESOLUTION = 5e-5


def seed_set_rows(seed_sets: dict[str, tuple[int, ...]], regret: dict, present: list[str],
                  at: int) -> list[str]:
  """Mean regret at trial `at` per designer over each named set of seeds (the seeds a
  setting was chosen on against held-out ones), with the studies each mean reads."""
  lines = ['', f'Mean regret at trial {at} by seed set (studies in brackets).', '',
           '| designer | ' + ' | '.join(f'seeds {name}' for name in seed_sets) + ' |',
           '|---|' + '---|' * len(seed_sets)]
  for d in present:
    cells = []
    for seeds in seed_sets.values():
      vals = [regret[k][at - 1] for k in regret if k[0] == d and k[3] in seeds]
      cells.append(f'{np.mean(vals):.4f} ({len(vals)})' if vals else '-')
    lines.append(f'| {d} | ' + ' | '.join(cells) + ' |')
  return lines


def _committed_table(preset: str, header: str, after: str = ''
                     ) -> tuple[list[str], list[list[str]]] | None:
  """The header cells and rows (cells stripped, bold marks too) of the first table in the
  committed bbob_<preset>.md whose header line starts with `header`, looked for from the
  first line that starts with `after`; None where there is no such file or table."""
  path = RESULTS / f'bbob_{preset}.md'
  if not path.exists():
    return None
  lines = path.read_text().splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith(after)), len(lines))
  at = next((i for i in range(start, len(lines)) if lines[i].startswith(header)), None)
  if at is None:
    return None
  cells = lambda line: [c.strip().strip('*') for c in line.strip('|').split('|')]
  rows = []
  for line in lines[at + 2:]:
    if not line.startswith('|'):
      break
    rows.append(cells(line))
  return cells(lines[at]), rows


def rows_without_runs(preset: str, designers: tuple[str, ...],
                      candidates: dict[str, str] | None = None) -> list[str]:
  """The designers whose row in the committed bbob_<preset>.md reads more studies than
  this machine holds runs of, made as the designer is now (a shard's closing aggregate would
  drop or thin that row: the machine did not make those runs)."""
  table = _committed_table(preset, '| designer | studies |')
  if table is None:
    return []
  here = collections.Counter(j[0] for j in stored_runs(preset, designers, candidates))
  return [row[0] for row in table[1] if here[row[0]] < int(row[1])]


def committed_means(preset: str, designer: str) -> dict[tuple[str, int], float]:
  """(function, dim) -> `designer`'s mean regret in the committed bbob_<preset>.md."""
  table = _committed_table(preset, '| function | dim |', after='Mean regret at trial')
  if table is None:
    raise ValueError(f'bbob_{preset}.md has no table of mean regret by (function, dim).')
  header, rows = table
  column = header.index(designer)
  return {(cells[0], int(cells[1])): float(cells[column]) for cells in rows
          if cells[column] != '-'}  # '-': a pair the designer did not run


def archived_means(preset: str, designer: str, refs: dict, at: int
                   ) -> dict[tuple[str, int], float]:
  """(function, dim) -> `designer`'s exact mean regret at trial `at` over `preset`'s seeds
  for it, from its archived runs (`run_store.ARCHIVED`, kept in git), on the pairs where every
  seed's run is archived; refs: (function, dim, seed) -> (f_opt, f_median) as the table
  normalises (computed here where missing)."""
  if designer not in ARCHIVED:
    return {}
  pairs = collections.defaultdict(list)  # (function, dim) -> the seeds' jobs
  for job in jobs_for(preset, (designer,)):
    pairs[job[1:3]].append(job)
  out = {}
  for (f, dim), jobs in pairs.items():
    if not all(raw_path(preset, *j).exists() for j in jobs):
      continue
    out[(f, dim)] = float(np.mean([
        normalised(json.loads(raw_path(preset, *j).read_text())['values'],
                   *(refs.get(j[1:]) or reference(*j[1:])))[at - 1] for j in jobs]))
  return out


def reference_rows(p: dict, regret: dict, ours: list[str], at: int, refs: dict | None = None
                   ) -> list[str]:
  """Each OmniPred variant's mean regret per pair against a designer's means
  (`p['reference']`: the preset whose table holds them, and the designer): exact where its
  archived runs hold every seed of the pair (`archived_means`), else the committed table's
  4 decimals (`against_rows`). refs: as `archived_means` reads them."""
  preset, other = p['reference']
  theirs = committed_means(preset, other)
  exact = archived_means(preset, other, refs or {}, at)
  theirs.update(exact)
  intro = (f'Against {other}\'s means (seeds {list(GP_SEEDS[preset])}; its runs are not '
           f're-made here): exact (e-notation) where its runs of every seed are archived '
           f'(benchmarks/results/archive/), else the committed `bbob_{preset}.md`\'s 4 decimals. '
           f'Mean regret at trial {at}, (W) where lower. A pair is won where the mean is lower '
           f'(ties half; where a committed mean reads 0.0000, i.e. below {TABLE_RESOLUTION:g}, '
           f'a mean below that is a tie), and within 10x where the mean is at most 10 times '
           f'theirs (at most {TABLE_RESOLUTION:g} where a committed mean reads 0.0000).')
  return against_rows(intro, regret, ours, at, other, theirs, set(exact))


def gp_rows(preset: str, regret: dict, ours: list[str], at: int) -> list[str]:
  """Each OmniPred variant's mean regret per pair against GP-UCB-PE's exact means, on the
  pairs where it ran every one of its seeds (`GP_SEEDS`)."""
  p, seeds = PRESETS[preset], GP_SEEDS[preset]
  theirs = {}
  for f in p['functions']:
    for dim in p['dims']:
      runs = [regret.get(('gp_ucb_pe', f, dim, s)) for s in seeds]
      if runs and all(r is not None for r in runs):
        theirs[(f, dim)] = float(np.mean([r[at - 1] for r in runs]))
  if not theirs:
    return []
  intro = (f'Against gp_ucb_pe\'s means over its seeds {list(seeds)}, on the pairs where it ran '
           f'all of them (each OmniPred variant over its own seeds): mean regret at trial {at}, '
           f'(W) where lower; a pair is won where the mean is lower (ties half), within 10x '
           f'where it is at most 10 times the GP\'s.')
  return against_rows(intro, regret, ours, at, 'gp_ucb_pe', theirs, set(theirs))


def against_rows(intro: str, regret: dict, ours: list[str], at: int, other: str,
                 theirs: dict, exact: set) -> list[str]:
  """Markdown lines: each OmniPred variant's mean regret per pair against `theirs`
  ((function, dim) -> mean; e-notation where in `exact`, else a committed 4-decimal mean), the
  pairs won (lower, ties half; where a committed mean reads 0.0000, a mean below the table's
  resolution is a tie) and those within 10x (a bound where it reads 0.0000)."""
  lines = ['', intro, '', '| function | dim | ' + ' | '.join(ours) + f' | {other} |',
           '|---|---|' + '---|' * (len(ours) + 1)]
  won = {o: [] for o in ours}
  near = {o: [] for o in ours}
  for (f, dim), ref in theirs.items():
    cells = []
    for o in ours:
      vals = [regret[k][at - 1] for k in regret if k[0] == o and k[1:3] == (f, dim)]
      if not vals:
        cells.append('-')
        continue
      mine = float(np.mean(vals))
      unresolved = ref == 0.0 and (f, dim) not in exact  # a committed 0.0000
      tie = mine == ref or (unresolved and mine < TABLE_RESOLUTION)
      won[o].append(0.5 if tie else float(mine < ref))
      near[o].append(mine <= (TABLE_RESOLUTION if unresolved else 10 * ref))
      cells.append(f'{mine:.2e}' + (' (W)' if mine < ref and not tie else ''))
    lines.append(f'| {f} | {dim} | ' + ' | '.join(cells)
                 + (f' | {ref:.2e} |' if (f, dim) in exact else f' | {ref:.4f} |'))
  lines.append('')
  for o in ours:
    if won[o]:
      lines.append(f'{o}: wins {sum(won[o]):g} of the {len(won[o])} pairs it ran against '
                   f'{other}\'s means ({len(exact)} of them exact); within 10x on '
                   f'{sum(near[o])}.')
  return lines


# The steps whose time split `split_table` reports (completed trials), the range the
# latency target names.
SPLIT_WINDOW = (45, 56)
SPLIT_PARTS = ('condition', 'search', 'sample')  # OmniPredDesigner.last_report['split']


def split_table(blobs: dict, present: list[str]) -> list[str]:
  """Markdown lines: each designer's median time split of a suggestion at 45-55 completed
  trials (the designers that report one: `last_report['split']`)."""
  rows = []
  for d in present:
    splits = [s for job, blob in blobs.items() if job[0] == d
              for c, s in zip(blob['completed'], blob.get('splits') or [])
              if s and SPLIT_WINDOW[0] <= c < SPLIT_WINDOW[1]]
    if splits:
      parts = [np.median([s.get(k, 0.0) for s in splits]) for k in SPLIT_PARTS]
      rows.append(f'| {d} | ' + ' | '.join(f'{v:.3f}' for v in parts) + f' | {sum(parts):.3f} |')
  if not rows:
    return []
  return ['', f'Where a suggestion\'s time goes at {SPLIT_WINDOW[0]}-{SPLIT_WINDOW[1] - 1} '
          'completed trials (median seconds; conditioning the surrogate, the acquisition '
          'optimiser, sampling + scoring + selection; the rest of a step is the evaluation '
          'and Vizier\'s loop).', '',
          '| designer | ' + ' | '.join(SPLIT_PARTS) + ' | total |',
          '|---|' + '---|' * (len(SPLIT_PARTS) + 1)] + rows


def plot(preset, present, regret, latency) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  p = PRESETS[preset]
  keys = [(f, dim) for f in p['functions'] for dim in p['dims']]
  cols = 4
  rows = (len(keys) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
  for ax, (f, dim) in zip(axes.flat, keys):
    for d in present:
      curves = [regret[k] for k in regret if k[0] == d and k[1] == f and k[2] == dim]
      if curves:
        ax.plot(np.arange(1, p['trials'] + 1), np.mean(curves, axis=0), label=d)
    ax.set_yscale('log')
    ax.set_title(f'{f} {dim}-D', fontsize=9)
    ax.grid(alpha=0.3)
  save_grid(fig, axes, len(keys), 'normalised simple regret (mean over seeds)',
            RESULTS / f'bbob_{preset}_convergence.png')
  fig, ax = plt.subplots(figsize=(6, 4))
  for d in present:
    pts = np.asarray(latency[d])
    if len(pts):
      order = np.argsort(pts[:, 0])
      c, s = pts[order, 0], pts[order, 1]
      grid = np.unique(c)
      ax.plot(grid, [np.median(s[c == g]) for g in grid], label=d)
  ax.set_yscale('log')
  ax.set_xlabel('completed trials')
  ax.set_ylabel('median seconds per suggestion')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(RESULTS / f'bbob_{preset}_latency.png', dpi=100)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--preset', choices=sorted(PRESETS), default='quick')
  parser.add_argument('--designers', default=None, help='comma-separated subset')
  parser.add_argument('--shard', default='0/1', help='i/n: run every n-th job from i')
  parser.add_argument('--dims', default=None, help='comma-separated subset of the dims')
  parser.add_argument('--seeds', default=None, help='comma-separated subset of the seeds')
  parser.add_argument('--functions', default=None, help='comma-separated subset of the functions')
  parser.add_argument('--job', default=None, help='FUNCTION,DIM,SEED: run one study here')
  parser.add_argument('--aggregate', action='store_true', help='only write tables and plots')
  parser.add_argument('--candidate', action='append', default=[], metavar='TAG=PATH',
                      help='also run each OmniPred variant with this checkpoint, as variant@TAG')
  args = parser.parse_args(argv)
  candidates = parse_candidates(args.candidate)
  preset_designers = PRESETS[args.preset]['designers']
  preset_designers += tuple(f'{d}@{tag}' for tag in candidates for d in preset_designers
                            if d in OMNIPRED_VARIANTS)
  designers = tuple(args.designers.split(',')) if args.designers else preset_designers
  if args.job:
    f, dim, seed = args.job.split(',')
    run_jobs(args.preset, [(designers[0], f, int(dim), int(seed))], isolate=False,
             candidates=candidates)
    return 0
  if not args.aggregate:
    i, n = (int(v) for v in args.shard.split('/'))
    jobs = jobs_for(args.preset, designers)
    if args.dims:
      jobs = [j for j in jobs if str(j[2]) in args.dims.split(',')]
    if args.seeds:
      jobs = [j for j in jobs if str(j[3]) in args.seeds.split(',')]
    if args.functions:
      jobs = [j for j in jobs if j[1] in args.functions.split(',')]
    jobs = jobs[i::n]
    t0 = time.perf_counter()
    run_jobs(args.preset, jobs, candidates=candidates)
    print(f'ran shard {args.shard} in {time.perf_counter() - t0:.0f}s')
  command = ''.join(f' --candidate {spec}' for spec in args.candidate)
  extra = tuple(d for d in designers if d not in preset_designers)  # e.g. a variant under test
  if extra:
    command += f' --designers {",".join(extra)}'
  lost = [] if args.aggregate else rows_without_runs(args.preset, preset_designers + extra,
                                                     candidates)
  if lost:
    print(f'bbob_{args.preset}.md is not rewritten: it has rows for {", ".join(lost)}, whose'
          ' runs are not on this machine (`--aggregate` rewrites it from what is here).')
    return 0
  print(aggregate(args.preset, preset_designers + extra, command, candidates))
  return 0


if __name__ == '__main__':
  sys.exit(main())
