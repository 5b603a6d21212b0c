"""Does an objective's model gain from reading the earlier objectives? (the chain rule's read)

    python -m benchmarks.chain_rule                                   # the shipped checkpoint
    python -m benchmarks.chain_rule --checkpoints A.pt B.pt           # checkpoints side by side

With several objectives the designer samples them jointly, p(y1, y2 | x) = p(y1 | x) p(y2 | x,
y1): objective k's LM reads a trial's values of objectives 1..k-1 as items
(`Featurizer(metric_inputs=...)`). This measures the second factor on held-out studies of the
prior's multi-output kind (`pretraining.multi_output_prior`, eval split: other metrics mixed
from the target with correlation -1..1 and an independent GP draw, some values missing): the
target predicted from a context of 10 and 30 trials, once reading the other metrics (at the
test points too, their true values) and once from the parameters alone. Study error of the
median as in regression.py (|error| / y range, capped at 1) and Spearman, mean over studies.
Table: benchmarks/results/chain_rule.md.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks.regression_studies import study_error  # noqa: E402
from benchmarks.run_store import RESULTS  # noqa: E402
from vizier_omnipred import OmniPredRegressor  # noqa: E402
from vizier_omnipred.pretraining.corpus import EVAL_SEED_OFFSET, IN_CONTEXT_CORPUS  # noqa: E402
from vizier_omnipred.pretraining.multi_output_prior import MultiOutputStudy  # noqa: E402

SIZES = (10, 30)
NUM_STUDIES = 60
NUM_TEST = 40
NUM_SAMPLES = 32


def evaluate(base: OmniPredRegressor, num_studies: int) -> dict:
  """-> {(size, reads_metrics): (mean study error, mean Spearman)}."""
  scores = {(n, read): ([], []) for n in SIZES for read in (True, False)}
  for i in tqdm(range(num_studies), desc='studies', leave=False):
    study = MultiOutputStudy(EVAL_SEED_OFFSET + i, IN_CONTEXT_CORPUS, split='eval')
    for n in SIZES:
      rows, y = study.draw(n + NUM_TEST, np.random.default_rng([i, n]))
      for read in (True, False):
        reg = base.for_new_study()
        reg.set_study(study.problem, metric_inputs=study.metric_inputs if read else ())
        shown = rows if read else [{k: v for k, v in r.items() if k not in study.metric_inputs}
                                   for r in rows]
        reg.condition(list(zip(shown[:n], y[:n])))
        median = np.median(reg.sample(shown[n:], NUM_SAMPLES, seed=i), axis=1)
        errors, spearman = scores[(n, read)]
        errors.append(study_error(median, y[n:], y))
        rho = stats.spearmanr(median, y[n:]).statistic
        spearman.append(0.0 if np.isnan(rho) else rho)
  return {k: (float(np.mean(e)), float(np.mean(s))) for k, (e, s) in scores.items()}


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--checkpoints', nargs='+', default=[None],
                  help='checkpoint files (default: the shipped one)')
  ap.add_argument('--studies', type=int, default=NUM_STUDIES)
  args = ap.parse_args(argv)
  lines = ['# The chain rule\'s read: held-out multi-output studies', '',
           f'{args.studies} held-out studies of the prior\'s multi-output kind; target predicted'
           f' from a context of {" / ".join(map(str, SIZES))} trials, reading the other'
           ' metrics or not. Study error (lower is better) / Spearman (higher is better), means'
           ' over studies.', '',
           '| checkpoint | ' + ' | '.join(f'{n} trials, {w}' for n in SIZES
                                          for w in ('reads metrics', 'parameters only')) + ' |',
           '|---' * (1 + 2 * len(SIZES)) + '|']
  for path in args.checkpoints:
    result = evaluate(OmniPredRegressor.from_pretrained(path), args.studies)
    name = path or 'shipped'
    lines.append(f'| {name} | ' + ' | '.join(
        f'{result[(n, read)][0]:.3f} / {result[(n, read)][1]:.2f}'
        for n in SIZES for read in (True, False)) + ' |')
  text = '\n'.join(lines) + '\n\nMade by `python -m benchmarks.chain_rule' + (
      f' --checkpoints {" ".join(args.checkpoints)}`' if args.checkpoints != [None] else '`') + '.\n'
  RESULTS.mkdir(exist_ok=True)
  (RESULTS / 'chain_rule.md').write_text(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
