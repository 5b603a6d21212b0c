"""What the surrogate does with a handful of trials: 1-D functions it never saw, a few
context points, the median and 10-90% band of 64 samples over a grid.

    python -m benchmarks.in_context_plot      # -> benchmarks/results/in_context_1d.png

No training happens: the shipped model reads the points as context (`condition`).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402

from benchmarks.run_store import RESULTS  # noqa: E402
from vizier_omnipred import OmniPredRegressor  # noqa: E402

# (title, function, context size): smooth, a bowl, a kink with ripples.
CASES = (
    ('sin(1.3x) + 0.1x', lambda x: np.sin(1.3 * x) + 0.1 * x, 6),
    ('(x - 1)^2', lambda x: (x - 1) ** 2, 10),
    ('|x + 2| + cos(3x)', lambda x: np.abs(x + 2) + np.cos(3 * x), 20),
)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', default=None, help='default: the shipped checkpoint')
  parser.add_argument('--out', default=str(RESULTS / 'in_context_1d.png'))
  args = parser.parse_args(argv)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  reg = OmniPredRegressor.from_pretrained(args.checkpoint)
  grid = np.linspace(-5, 5, 200)
  fig, axes = plt.subplots(1, len(CASES), figsize=(5 * len(CASES), 3.8))
  for ax, (title, f, n) in zip(axes, CASES):
    x = np.random.default_rng(0).uniform(-5, 5, n)
    reg.condition([({'x': float(a)}, float(f(a))) for a in x])
    pred = reg.predict([{'x': float(g)} for g in grid], num_samples=64)
    ax.plot(grid, f(grid), 'k--', label='true function')
    ax.plot(grid, pred.median, label='median of 64 samples')
    ax.fill_between(grid, pred.quantiles[:, 0], pred.quantiles[:, 2], alpha=0.3,
                    label='10-90% of samples')
    ax.scatter(x, f(x), c='r', zorder=3, label='context trials')
    ax.set_title(f'{title}: {n} context trials', fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle(f'In-context predictions of {reg.card.get("name")} '
               f'({reg.card.get("steps")} pretraining steps), no fine-tuning', fontsize=11)
  fig.tight_layout()
  fig.savefig(args.out, dpi=90)
  print(f'wrote {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
