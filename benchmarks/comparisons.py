"""How two designers' runs compare, for the benchmark tables.

- `win_rate_rows`: the share of studies where one designer's regret is lower (ties half).
- `save_grid`: a figure of per-study panels, finished and written.
- `log_efficiency`: Vizier's yardstick, the log-efficiency of one designer's convergence curves
  against a baseline's (`LogEfficiencyConvergenceCurveComparator` of Vizier's benchmark
  analyzers). A score s > 0 means the compared designer needs about exp(-s) times the
  baseline's trials to reach the same best value (median curves over seeds); s < 0, more;
  Vizier clips scores to [-1, 1].
"""

from __future__ import annotations

import textwrap
from typing import Callable

import numpy as np

# A grid's shared y label is wrapped to about this many characters per inch of figure height
# (matplotlib's default 10 pt font), never to lines shorter than _MIN_LABEL_LINE.
_LABEL_CHARS_PER_INCH = 10
_MIN_LABEL_LINE = 20


def log_efficiency(compared: np.ndarray, baseline: np.ndarray) -> float:
  """compared, baseline: [seeds, trials] best-so-far values to MINIMISE (e.g. regret)."""
  from vizier._src.benchmarks.analyzers import convergence_curve as cc  # pylint: disable=g-import-not-at-top
  compared, baseline = np.atleast_2d(compared), np.atleast_2d(baseline)
  xs = np.arange(1, compared.shape[1] + 1)
  curve = lambda ys: cc.ConvergenceCurve(xs=xs, ys=np.asarray(ys, dtype=float),
                                         trend=cc.ConvergenceCurve.YTrend.DECREASING)
  return float(cc.LogEfficiencyConvergenceCurveComparator(
      baseline_curve=curve(baseline), compared_curve=curve(compared)).score())


# The header of `win_rate_rows`' table.
WIN_RATE_HEADER = ['| OmniPred variant | against | studies | wins | its mean regret | theirs |',
                   '|---|---|---|---|---|---|']


def win_rate_rows(regret: dict, ours, present, at: int,
                  skip: Callable[[str, str], bool] = lambda o, d: False) -> list[str]:
  """Markdown rows under WIN_RATE_HEADER at trial `at`: studies, the share won, and both mean
  regrets over the same studies. regret: (designer, *study) -> [trials] regret; a study is
  compared where both designers ran it."""
  rows = []
  for o in ours:
    for d in present:
      if d == o or skip(o, d):
        continue
      pairs = [(regret[(o,) + k[1:]][at - 1], regret[k][at - 1])
               for k in regret if k[0] == d and (o,) + k[1:] in regret]
      if pairs:
        wins = np.mean([1.0 if a < b else 0.5 if a == b else 0.0 for a, b in pairs])
        mine, theirs = np.mean(pairs, axis=0)
        rows.append(f'| {o} | {d} | {len(pairs)} | {wins:.0%} | {mine:.4f} | {theirs:.4f} |')
  return rows


def save_grid(fig, axes, used: int, ylabel: str, path) -> None:
  """Finishes a grid of convergence panels (legend on the first, the unused ones hidden,
  shared labels) and writes it to `path`."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  for ax in axes.flat[used:]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=7)
  fig.supxlabel('trial')
  # Wrapped to the figure's height: a one-row grid is shorter than a long label.
  fig.supylabel(textwrap.fill(ylabel, max(_MIN_LABEL_LINE, int(
      fig.get_figheight() * _LABEL_CHARS_PER_INCH))))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def regret_panel(ax, regret: dict, labels, chosen: Callable[[tuple, str], bool], title: str,
                 trials: int) -> None:
  """One convergence panel: for each label, the mean regret curve of the runs `chosen(key,
  label)` picks (log scale; curves floored at 1e-4)."""
  x = np.arange(1, trials + 1)
  for label in labels:
    curves = [regret[k] for k in regret if chosen(k, label)]
    if curves:
      ax.plot(x, np.maximum(np.mean(curves, axis=0), 1e-4), label=label)
  ax.set_yscale('log')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
