"""Regression benchmark: OmniPred's "study error" on three sets of held-out studies.

    python -m benchmarks.regression            # full: 15 BBOB + 15 GP + 5 tuning studies
    python -m benchmarks.regression --quick    # a few minutes: fewer studies
    python -m benchmarks.regression --sets dims --out benchmarks/results/regression_dims

Study sets (none of them seen in pretraining):
  bbob:   BBOB functions held out from pretraining (vizier.benchmarks), optimum shifted,
          x0..x{d-1} uniform in [-5, 5], dims 2/4/8.
  gp:     functions drawn from the GP prior (`pretraining.gp_prior`) with seeds pretraining
          never draws, dims 2/4/8.
  tuning: real tuning studies with mixed parameter types: scikit-learn models on datasets
          that ship with scikit-learn (`tuning_studies.py`: SVM, decision tree, k-NN, elastic
          net, gradient boosting; log/linear DOUBLE, INTEGER, DISCRETE, CATEGORICAL).
  dims:   (not in the default run) shifted Sphere, a function family pretraining DOES draw,
          at 1/2/3/4/6/8-D x 3 seeds: how far in-context regression reaches with dimension.
  sparse: (not in the default run) the held-out BBOB functions of 2 parameters, among 2, 4
          or 8 that all vary: can the model find the ones that matter from the trials?
A GP-prior or tuning study is one pool of points: methods fit the first 10/30/100 and predict
its last 50. A BBOB study draws uniform points per training size from fixed seeds, 100 test
points (`bbob_studies`).

  study error = mean over test points of min(|prediction - y| / (y_max - y_min), 1)
  (OmniPred, Song et al. 2024; y range over the study's train + test points)
  coverage    = share of test y inside the method's 10-90% predictive interval (ideal 0.8)

Methods: the in-context LM zero-shot (the trials are its context, no weight changes; each
prediction the mean of `--views` views of the study, `OmniPredRegressor.views`; it reads the
parameters its held-out likelihood keeps, `OmniPredRegressor.relevance`), the same reading
every parameter, the same from one view (the model as trained, no ensemble), the same plus
test-time LoRA, and
scikit-learn's random forest, GP (Matern 5/2 + noise, ARD) and
MLP, and a Nadaraya-Watson kernel smoother (bandwidth by leave-one-out: local averaging);
the baselines read log parameters as log10 and categories one-hot. A last row predicts the
training points' median everywhere: the error of knowing nothing about x.
Writes benchmarks/results/regression.{md,png}.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

from benchmarks import process_setup

process_setup.prepare()  # before torch loads

import attrs  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks.regression_studies import (  # noqa: E402
    BBOB_NUM_TEST, DEFAULT_SETS, DIMS_SET, LORA, NUM_TEST, SIZES, SPARSE_SET, TRANSFER_METHODS,
    TRANSFER_SIZES, LMMethod, bbob_studies, gp_studies, sklearn_methods, study_error,
    transfer_errors, tuning_study_set)
from benchmarks import transfer_families  # noqa: E402
from benchmarks.run_store import RESULTS  # noqa: E402
from vizier_omnipred import OmniPredRegressor, checkpoints  # noqa: E402
from vizier_omnipred.pretraining.corpus import HELD_OUT_FUNCTIONS  # noqa: E402
from vizier_omnipred.regressor import DEFAULT_VIEWS  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--checkpoint', default=None, help='default: the shipped checkpoint')
  parser.add_argument('--sets', default=DEFAULT_SETS,
                      help='of bbob, gp, tuning, dims, sparse; or transfer alone')
  parser.add_argument('--out', default=str(RESULTS / 'regression'))
  parser.add_argument('--views', type=int, default=DEFAULT_VIEWS,
                      help='views of a study each LM prediction averages (a 1-view row is added)')
  parser.add_argument('--records', default=None, metavar='JSON',
                      help='also write every (method, study, size) record here, unrounded')
  args = parser.parse_args(argv)
  torch.set_num_threads(1)
  sets = args.sets.split(',')
  if sets == ['transfer']:
    default_out = args.out == parser.get_default('out')
    return transfer_main(args.checkpoint or str(checkpoints.SHIPPED_TRANSFER),
                         RESULTS / 'regression_transfer' if default_out else pathlib.Path(args.out),
                         flags=(f' --checkpoint {args.checkpoint}' * bool(args.checkpoint)
                                + f' --out {args.out}' * (not default_out)))
  studies = []
  if 'bbob' in sets:
    studies += bbob_studies(HELD_OUT_FUNCTIONS[:2] if args.quick else HELD_OUT_FUNCTIONS,
                            (2,) if args.quick else (2, 4, 8))
  if 'gp' in sets:
    studies += gp_studies(range(2 if args.quick else 5), (2,) if args.quick else (2, 4, 8))
  if 'tuning' in sets:
    studies += tuning_study_set(['svm_breast_cancer', 'elasticnet_diabetes'] if args.quick
                                else None)
  if 'dims' in sets:
    studies += [attrs.evolve(s, family='dims') for seed in DIMS_SET['seeds']
                for s in bbob_studies(('Sphere',), DIMS_SET['dims'], seed=seed)]
  if 'sparse' in sets:
    studies += bbob_studies(HELD_OUT_FUNCTIONS, SPARSE_SET['dims'],
                            effective=SPARSE_SET['effective'])

  pretrained = OmniPredRegressor.from_pretrained(args.checkpoint, views=args.views)
  methods = {'in-context LM, zero-shot': LMMethod(pretrained, None),
             'in-context LM, zero-shot, every parameter': LMMethod(
                 pretrained.for_new_study(relevance=None), None)}
  if args.views > 1:
    methods['in-context LM, zero-shot, 1 view'] = LMMethod(pretrained.for_new_study(views=1),
                                                           None)
  methods['in-context LM + LoRA'] = LMMethod(pretrained, LORA)
  methods.update(sklearn_methods(0))

  records = []
  warnings.filterwarnings('ignore', category=ConvergenceWarning)
  warnings.filterwarnings('ignore', module='sklearn')
  jobs = [(study, n) for study in studies for n in SIZES]
  for study, n in tqdm(jobs, desc='studies x sizes', dynamic_ncols=True):
    data = study.split(n)
    yte = data.test_y
    y_all = np.concatenate([data.y, yte])
    for name, method in methods.items():
      t0 = time.perf_counter()
      fit = method(study, data)
      covered = (float(np.mean((yte >= fit.lo) & (yte <= fit.hi))) if fit.lo is not None
                 else float('nan'))
      records.append(dict(method=name, family=study.family, study=study.name, dim=study.dim,
                          n=n, error=study_error(fit.median, yte, y_all),
                          spearman=float(stats.spearmanr(fit.median, yte).statistic),
                          coverage=covered, seconds=time.perf_counter() - t0))
  write_results(records, methods, args, pretrained)
  if args.records:
    pathlib.Path(args.records).write_text(json.dumps(records, indent=0))
  return 0


def transfer_main(checkpoint: str, out: pathlib.Path, flags: str = '') -> int:
  """`--sets transfer`: study error with and without related prior studies in context
  (`regression_studies.transfer_errors`), to `out`.md (benchmarks/results/regression_transfer.md
  by default); `flags`: the command's other flags, for the table's footer."""
  base = OmniPredRegressor.from_pretrained(checkpoint)
  studies = sum(case == 'related' for case, _, _ in transfer_families.cases())
  warnings.filterwarnings('ignore', category=ConvergenceWarning)
  with tqdm(total=studies * len(TRANSFER_SIZES) * len(TRANSFER_METHODS),
            desc='transfer: studies x sizes x methods', dynamic_ncols=True) as bar:
    errors = transfer_errors(base, progress=bar)
  lines = ['# Regression with prior studies in context', '',
           f'{studies} left-out studies of the related families of `benchmarks/transfer.py` '
           '(SVM, k-NN and gradient boosting on 4 scikit-learn datasets, Ellipsoidal 4-D in 4 '
           f'instances); prior studies: the family\'s other 3, 30 random trials each. Study '
           f'error (|error| / y range, capped at 1; lower is better) at n random trials of '
           f'the left-out study, {NUM_TEST} test points; mean over studies. LM: '
           f'`{pathlib.Path(checkpoint).name}`.', '',
           '| method | ' + ' | '.join(f'n = {n}' for n in TRANSFER_SIZES) + ' |',
           '|---' * (1 + len(TRANSFER_SIZES)) + '|']
  for method in TRANSFER_METHODS:
    lines.append(f'| {method} | ' + ' | '.join(
        f'{np.mean(errors[method, n]):.4f}' for n in TRANSFER_SIZES) + ' |')
  lines += ['', f'Command: `python -m benchmarks.regression --sets transfer{flags}`']
  text = '\n'.join(lines) + '\n'
  out.with_suffix('.md').write_text(text)
  print(text)
  return 0


FAMILY_TITLES = {'bbob': 'held-out BBOB functions', 'gp': 'held-out GP-prior functions',
                 'tuning': 'scikit-learn tuning studies (mixed types)',
                 'dims': 'shifted Sphere (a pretraining family), 3 seeds per dimension',
                 'sparse': 'held-out BBOB functions of 2 parameters among 2, 4 or 8'}


def write_results(records, methods, args, pretrained) -> None:
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)

  def agg(name, family, n, key):
    vals = [r[key] for r in records if r['method'] == name and r['n'] == n
            and r['family'] == family]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float('nan')

  def cell(value, digits):  # '-': undefined (no predictive distribution; a constant's rank)
    return '-' if np.isnan(value) else f'{value:.{digits}f}'

  families = [f for f in FAMILY_TITLES if any(r['family'] == f for r in records)]
  first = next(iter(methods))
  cfg = pretrained.base.model_config
  lines = [f'Held-out studies ({BBOB_NUM_TEST} test points each for BBOB; '
           f'{NUM_TEST} for the others); mean over studies. Study error: '
           'lower is better; Spearman: higher is better; coverage: share of test y inside '
           'the 10-90% interval (0.8 is calibrated; `-`: no predictive distribution, or no rank '
           'order for Spearman). '
           f'LM: `{pretrained.card.get("name")}` ({pretrained.card.get("steps")} pretraining '
           f'steps; d_model {cfg.d_model}, {cfg.encoder_layers}+{cfg.decoder_layers} layers; '
           f'{pretrained.views} views; parameters read: '
           f'{"those its held-out likelihood keeps" if pretrained.relevance else "all"}); '
           f'LoRA: {LORA.max_steps} steps, rank {LORA.lora_rank}, lr {LORA.learning_rate}.', '']
  for family in families:
    count = sum(r['family'] == family and r['method'] == first and r['n'] == SIZES[0]
                for r in records)  # studies, also where seeds share a name ('dims')
    lines += [f'### {FAMILY_TITLES[family]} ({count} studies)', '',
              '| method | ' + ' | '.join(f'error @ {n}' for n in SIZES) + ' | '
              + ' | '.join(f'Spearman @ {n}' for n in SIZES) + ' | coverage @ 30 | s / fit @ 30 |',
              '|---|' + '---|' * (2 * len(SIZES) + 2)]
    for name in methods:
      errs = ' | '.join(cell(agg(name, family, n, 'error'), 3) for n in SIZES)
      rhos = ' | '.join(cell(agg(name, family, n, 'spearman'), 3) for n in SIZES)
      lines.append(f'| {name} | {errs} | {rhos} | {cell(agg(name, family, 30, "coverage"), 2)} '
                   f'| {agg(name, family, 30, "seconds"):.2f} |')
    lines.append('')
  flags = (' --quick' if args.quick else '') + (
      '' if args.sets == DEFAULT_SETS else f' --sets {args.sets}') + (
      '' if args.out == str(RESULTS / 'regression') else f' --out {args.out}') + (
      '' if args.views == DEFAULT_VIEWS else f' --views {args.views}')
  lines += [f'Command: `python -m benchmarks.regression{flags}`',
            '', '### Study error at 30 training points, by study (mean over seeds of one name)',
            '',
            '| study | ' + ' | '.join(methods) + ' |', '|---|' + '---|' * len(methods)]
  for family in families:
    for study in sorted({r['study'] for r in records if r['family'] == family}):
      cells = [np.mean([r['error'] for r in records if r['method'] == m and r['n'] == 30
                        and r['study'] == study]) for m in methods]
      best = int(np.argmin(cells))
      lines.append(f'| {study} | ' + ' | '.join(
          f'**{c:.3f}**' if i == best else f'{c:.3f}' for i, c in enumerate(cells)) + ' |')
  out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
  print('\n'.join(lines))

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, len(families), figsize=(4.5 * len(families), 7), squeeze=False)
  for col, family in enumerate(families):
    for name in methods:
      axes[0, col].plot(SIZES, [agg(name, family, n, 'error') for n in SIZES], marker='o',
                        label=name)
      axes[1, col].plot(SIZES, [agg(name, family, n, 'spearman') for n in SIZES], marker='o',
                        label=name)
    axes[0, col].set_title(FAMILY_TITLES[family], fontsize=10)
    axes[0, col].set_ylabel('study error (lower is better)')
    axes[1, col].set_ylabel('Spearman (higher is better)')
    for ax in axes[:, col]:
      ax.set_xscale('log')
      ax.set_xticks(SIZES, [str(s) for s in SIZES])
      ax.set_xlabel('training points (context)')
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out.with_suffix('.png'), dpi=110)
  print(f'wrote {out.with_suffix(".md")} and {out.with_suffix(".png")}')
  if 'dims' in families:
    plot_by_dimension(records, methods, out.with_name(out.name + '_by_dim.png'))


def plot_by_dimension(records, methods, path: pathlib.Path, n: int = 30) -> None:
  """Study error at n training points against the dimension (the `dims` set): where
  in-context regression stops keeping up with a GP."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  dims = sorted({r['dim'] for r in records if r['family'] == 'dims'})
  fig, ax = plt.subplots(figsize=(6, 4))
  for name in methods:
    ax.plot(dims, [np.mean([r['error'] for r in records if r['family'] == 'dims'
                            and r['method'] == name and r['n'] == n and r['dim'] == d])
                   for d in dims], marker='o', label=name)
  ax.set_xticks(dims)
  ax.set_xlabel('dimension')
  ax.set_ylabel(f'study error at {n} points (lower is better)')
  ax.set_title(FAMILY_TITLES['dims'], fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f'wrote {path}')


if __name__ == '__main__':
  sys.exit(main())
