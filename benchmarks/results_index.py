"""benchmarks/RESULTS.md: every results table of benchmarks/results/, in one file, generated.

    python -m benchmarks.results_index           # writes benchmarks/RESULTS.md
    python -m benchmarks.results_index --check   # exit 1 if the committed file is stale

Each benchmark writes its own tables to benchmarks/results/<name>.md (with the command that
made them); this script only gathers them, under a heading each, with their plots linked, in
the order of `SECTIONS` (a results file not listed there comes last, by name). Nothing is
copied by hand, so a rerun of a benchmark and of this script is the whole update.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results'
INDEX = HERE / 'RESULTS.md'

# (results file stem, heading): the order a reader meets them in.
SECTIONS = (
    ('tuning', 'Hyperparameter tuning: scikit-learn tasks'),
    ('optuna', 'Through Optuna: against TPE, GPSampler and random'),
    ('bbob_seed0', 'BBOB, seed 0: 8 functions x 4-D and 8-D'),
    ('bbob_seed1', 'BBOB, seed 1'),
    ('bbob_full', 'BBOB, the full preset (per-point model)'),
    ('bbob_quadratic', 'BBOB with the local quadratic step (`quadratic_step`)'),
    ('bbob_quadratic_heldout', 'BBOB with the quadratic step, seeds its settings were not chosen on'),
    ('bbob_batch8', 'BBOB in batches of 8'),
    ('bbob_long150', 'BBOB at 150 trials: zero-shot against test-time LoRA'),
    ('bbob_latency', 'Seconds per suggestion'),
    ('bbob_memory', 'Memory'),
    ('smooth_oracle', 'Smooth functions: the model or the search?'),
    ('local_ranking', 'Smooth functions: how the model ranks moves near the incumbent'),
    ('regression', 'Regression: study error against GP and random forest'),
    ('regression_dims', 'Regression by dimension'),
    ('regression_sparse', 'Regression with parameters that do nothing'),
    ('regression_transfer', 'Regression with prior studies in context'),
    ('regression_transfer_pregate', 'Regression with prior studies in context, the transfer'
                                    ' weights before the gate'),
    ('conditional', 'Conditional search spaces'),
    ('multi_objective', 'Several objectives'),
    ('chain_rule', 'Several objectives: does reading the earlier ones help'),
    ('transfer', 'Transfer from prior studies'),
    ('transfer_default_10seeds', 'Transfer: the default designer over ten seeds'),
    ('transfer_default_5seeds', 'Transfer: the default designer against the GP with priors,'
                                ' five seeds'),
    ('transfer_search', 'Transfer: the acquisition searched once prior studies are set'),
    ('transfer_early', 'Transfer: the first trials with priors (the model sooner, the median)'),
    ('transfer_region', 'Transfer: quasi-random seeds inside the prior studies\' best box'),
    ('transfer_relevance', 'Transfer: the parameter choice reading the prior studies\' trials'),
    ('transfer_relevance_unrelated', 'Transfer: the parameter choice reading the prior'
                                     ' studies\' trials, unrelated control'),
    ('transfer_relevance_5seeds', 'Transfer: the parameter choice reading the prior'
                                  ' studies\' trials, five seeds'),
    ('transfer_pregate', 'Transfer, the weights before the gate: every prior-study setting'),
    ('transfer_seeds34', 'Transfer, the weights before the gate: the prior-study reading on'
                         ' seeds it was not chosen on'),
    ('transfer_5seeds', 'Transfer, the weights before the gate: the prior-study reading over'
                        ' five seeds'),
    ('transfer_10seeds', 'Transfer, the weights before the gate: the related studies over ten'
                         ' seeds'),
    ('transfer_unrelated_10seeds', 'Transfer, the weights before the gate: the unrelated control'
                                   ' over ten seeds'),
    ('pooled_priors', 'Transfer: reading prior studies as the study\'s own trials'),
    ('prior_averaging', 'Transfer: unrelated prior studies, read or averaged with the study'
                        ' alone'),
    ('prior_averaging_pregate', 'Transfer, the weights before the gate: unrelated prior'
                                ' studies, read or averaged'),
    ('prior_names', 'Transfer: what unrelated prior studies cost, with and without shared names'),
    ('prior_averaging_unrelated50', 'Transfer, a retrain with half the prior studies unrelated:'
                                    ' held-out loss'),
    ('prior_names_unrelated50', 'Transfer, the same retrain: with and without shared names'),
    ('transfer_candidate_unrelated50', 'Transfer, the same retrain: in the designer'),
    ('prior_averaging_current_slots', 'Transfer: slots ranked by the study\'s own names,'
                                      ' held-out loss'),
    ('prior_averaging_gate', 'Transfer: a gate per prior study (and own-name slots), held-out'
                             ' loss'),
    ('transfer_candidate_gate', 'Transfer, the gate: in the designer'),
    ('transfer_candidate_gate_5seeds', 'Transfer, the gate: in the designer over five seeds'),
    ('transfer_candidate_gate_10seeds', 'Transfer, the gate: related studies over ten seeds'),
    ('transfer_candidate_gate_unrelated_10seeds', 'Transfer, the gate: the unrelated control'
                                                  ' over ten seeds'),
    ('regression_transfer_gate', 'Transfer, the gate: regression with related prior studies'),
    ('transfer_candidate_family', 'Transfer, the network trained on more study families: in the'
                                  ' designer'),
    ('concurrency', 'Many workers on one study'),
    ('many_parameters', 'Many parameters'),
    ('server', 'Through a Vizier server'),
    ('trial_probe', 'What a trial token holds'),
    ('symbolic', 'Symbolic regression (`explain`)'),
)


def render() -> str:
  known = [stem for stem, _ in SECTIONS if (RESULTS / f'{stem}.md').exists()]
  rest = sorted(p.stem for p in RESULTS.glob('*.md') if p.stem not in dict(SECTIONS))
  titles = dict(SECTIONS)
  lines = ['# Benchmark results', '',
           'Generated by `python -m benchmarks.results_index` from `benchmarks/results/*.md`, '
           'which the benchmarks write (each table names the command that made it). Do not '
           'edit by hand.', '']
  lines += [f'- [{titles.get(stem, stem)}](#{_anchor(titles.get(stem, stem))})'
            for stem in known + rest]
  for stem in known + rest:
    title = titles.get(stem, stem)
    lines += ['', f'## {title}', '', f'From [`results/{stem}.md`](results/{stem}.md).', '']
    lines.append((RESULTS / f'{stem}.md').read_text().strip())
    plots = [p for p in sorted(RESULTS.glob('*.png')) if _owner(p.stem, known + rest) == stem]
    if plots:
      lines += [''] + [f'![{p.stem}](results/{p.name})' for p in plots]
  return '\n'.join(lines) + '\n'


def _owner(plot: str, stems: list[str]) -> str | None:
  """The results file a plot belongs to: the longest stem it starts with."""
  owners = [s for s in stems if plot == s or plot.startswith(s + '_')]
  return max(owners, key=len) if owners else None


def _anchor(title: str) -> str:
  """GitHub's heading anchor: lower case, spaces to hyphens, punctuation dropped."""
  kept = ''.join(c for c in title.lower() if c.isalnum() or c in ' -_')
  return kept.replace(' ', '-')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--check', action='store_true', help='exit 1 if RESULTS.md is stale')
  args = parser.parse_args(argv)
  text = render()
  if args.check:
    if not INDEX.exists() or INDEX.read_text() != text:
      print(f'{INDEX} is stale: run python -m benchmarks.results_index', file=sys.stderr)
      return 1
    return 0
  INDEX.write_text(text)
  print(f'wrote {INDEX}')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
