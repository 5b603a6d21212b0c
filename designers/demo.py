"""The README's main job: optimise a shifted BBOB function with the shipped checkpoint.

    vizier-omnipred demo --function Rastrigin --dim 4 --trials 40

Runs OmniPred and Vizier's random search on the same shifted function, with a progress bar
each, then prints the best value found by trial 10/20/.../N and seconds per suggestion.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm
from vizier._src.algorithms.designers import random as random_designer

from designers.omnipred_designer import OmniPredDesigner
from designers.study_runner import StudyRun, run_study, shifted_bbob
from designers.lm_surrogate import LMSurrogate
from vizier_omnipred import OmniPredRegressor


def result_table(runs: list[StudyRun], checkpoints: list[int]) -> str:
  """Markdown: best objective (lower is better) by trial, and median seconds per suggestion."""
  head = '| designer | ' + ' | '.join(f'best @ {c}' for c in checkpoints) + ' | s / suggestion |'
  rows = [head, '|' + '---|' * (len(checkpoints) + 2)]
  for run in runs:
    best = run.best_so_far()
    cells = [f'{best[min(c, len(best)) - 1]:.4g}' for c in checkpoints]
    rows.append(f'| {run.name} | ' + ' | '.join(cells) + f' | {np.median(run.seconds):.3f} |')
  return '\n'.join(rows)


def main(args) -> int:
  start = time.perf_counter()
  shared = OmniPredRegressor.from_pretrained()  # the shipped checkpoint, loaded once
  surrogates = LMSurrogate.factory(shared=shared)
  card = shared.card
  print(f'checkpoint: {card.get("name")} ({card.get("num_parameters", "?")} parameters, '
        f'{card.get("steps", "?")} pretraining steps)')
  print(f'problem: {args.function} in {args.dim}-D, optimum shifted (seed {args.seed}), '
        f'{args.trials} trials, minimise')
  factories = {
      'omnipred': lambda p, seed=None: OmniPredDesigner(p, seed=seed,
                                                        surrogate_factory=surrogates),
      'random': lambda p, seed=None: random_designer.RandomDesigner(p.search_space, seed=seed),
  }
  runs = []
  for name, factory in factories.items():
    with tqdm(total=args.trials, desc=name, dynamic_ncols=True) as bar:
      runs.append(run_study(name, factory, shifted_bbob(args.function, args.dim, args.seed),
                            args.trials, seed=args.seed, progress=bar))
  marks = sorted({c for c in (10, 20, 40, 80, args.trials) if c <= args.trials})
  print()
  print(result_table(runs, marks))
  print(f'\ntotal {time.perf_counter() - start:.0f}s')
  return 0
