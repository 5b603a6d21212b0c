"""Writes the model card of a training run and ships its weights.

    python -m vizier_omnipred.pretraining.model_card runs/small [--ship]      # surrogate LM
    python -m vizier_omnipred.pretraining.model_card runs/symbolic --kind symbolic [--ship]

The card is made from the run's summary.json, so every number in it is the run's own; the
benchmark table (benchmarks/results/regression.md or symbolic.md) is appended when it exists.
Cards: checkpoints/README.md (surrogate) and checkpoints/SYMBOLIC.md (symbolic regression).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

from vizier_omnipred import checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[2]


def card_text(summary: dict, regression: str | None) -> str:
  cfg = summary['train_config']
  m = cfg['model']
  c = cfg['corpus']
  text = f"""# Model card: omnipred-small

The checkpoint `omnipred-small.pt` that `OmniPredRegressor.from_pretrained()` loads.

| | |
|---|---|
| architecture | encoder-decoder, d_model {m['d_model']}, {m['num_heads']} heads, {m['encoder_layers']} encoder + {m['decoder_layers']} decoder layers, MLP {m['d_ff']} |
| parameters | {summary['num_parameters']:,} |
| input | one item per parameter (name characters + value as sign/exponent/4 digits + symlog scalar, or category characters) and study metadata items; no positional order |
| output | y after a per-study map onto [2, 3], as sign, exponent (E{m['y_min_exponent']}..E{m['y_max_exponent']}), {m['y_digits']} digits |
| data | synthetic studies from `vizier_omnipred.pretraining.corpus` (seed {summary['seed']}): a pool of {c['pool_size']} training studies over 16 BBOB functions, dims {c['min_dim']}-{c['max_dim']}, revisited with fresh trials ({cfg['trials_per_study']} per visit); held out: AttractiveSector, BuecheRastrigin, SharpRidge, Weierstrass, Gallagher21Me and a disjoint seed range |
| training | {summary['steps']} steps x {summary['examples_per_step']} examples, AdamW lr {cfg['learning_rate']} (warmup {cfg['warmup_steps']}, cosine to {cfg['min_learning_rate_ratio']}x), weight decay {cfg['weight_decay']}, clip {cfg['grad_clip']}, bf16 {cfg['bf16']} |
| hardware | {summary['world_size']} process(es) on {summary['device']} (one thread of a 2-core CPU) |
| wall time | {summary['wall_time_s'] / 60:.1f} min |
| final held-out loss | {summary['final_val_loss']:.4f} nats per y token (zero-shot, held-out functions) |

Reproduce: `vizier-omnipred pretrain --out runs/small --steps {cfg['steps']} --threads 1`, then
`python -m vizier_omnipred.pretraining.model_card runs/small --ship`.

{_loss_table(summary['history'])}"""
  if regression:
    text += '\n## Regression benchmark (benchmarks/regression.py)\n\n' + regression
  return text


def _loss_table(history: list[dict]) -> str:
  rows = '\n'.join(f'| {h["step"]} | {h["train_loss"]:.4f} | {h["val_loss"]:.4f} |' for h in history)
  return ('## Loss during training\n\n| step | train loss | held-out loss |\n|---|---|---|\n'
          + rows + '\n')


def symbolic_card_text(summary: dict, benchmark: str | None) -> str:
  cfg = summary['train_config']
  m = cfg['model']
  g = m['generator']
  text = f"""# Model card: symbolic-small

The checkpoint `symbolic-small.pt` that `vizier_omnipred.symbolic.explain.explain()` and
`vizier-omnipred explain` load: end-to-end symbolic regression after Kamienny et al. (2022).

| | |
|---|---|
| architecture | point-set encoder ({m['encoder_layers']} layers, no positional embeddings) + causal decoder ({m['decoder_layers']} layers), d_model {m['d_model']}, {m['num_heads']} heads, MLP {m['d_ff']} |
| parameters | {summary['num_parameters']:,} |
| input | one vector per point: x0..x{g['max_dim'] - 1} and y, each as sign/exponent/{m['point_digits']} digits (slot embeddings of width {m['slot_dim']}) + symlog scalar + present flag, through a 2-layer ReLU FFN |
| output | the formula in prefix order; constants as sign, exponent (E-3..E3), 2-digit mantissa; sampling masked by the prefix grammar |
| data | formulas streamed from `vizier_omnipred.symbolic.generator` (seed {summary['seed']}): D <= {g['max_dim']}, D-1..D+{g['extra_binary']} binary and 0..{g['max_unary']} unary operators, affine maps with probability {g['affine_probability']}, {g['min_points']}-{g['max_points']} whitened points from Gaussian mixtures, at most {g['max_len']} tokens; held-out loss on 256 formulas from a seed range training never uses |
| training | {summary['steps']} steps x {summary['examples_per_step']} formulas, AdamW lr {cfg['learning_rate']} (warmup {cfg['warmup_steps']}, cosine to {cfg['min_learning_rate_ratio']}x), weight decay {cfg['weight_decay']}, clip {cfg['grad_clip']} |
| hardware | {summary['world_size']} process(es) on {summary['device']} (one thread of a 2-core CPU) |
| wall time | {summary['wall_time_s'] / 60:.1f} min |
| final held-out loss | {summary['final_val_loss']:.4f} nats per formula token |

Reproduce: `vizier-omnipred explain-pretrain --out runs/symbolic --steps {cfg['steps']} --threads 1`,
then `python -m vizier_omnipred.pretraining.model_card runs/symbolic --kind symbolic --ship`.

{_loss_table(summary['history'])}"""
  if benchmark:
    text += '\n## Benchmark (benchmarks/symbolic.py)\n\n' + benchmark.split('\n', 2)[2]
  return text


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('run', help='pretraining run directory (summary.json, model.pt)')
  parser.add_argument('--kind', choices=('omnipred', 'symbolic'), default='omnipred')
  parser.add_argument('--ship', action='store_true', help='copy model.pt into the package')
  args = parser.parse_args(argv)
  run = pathlib.Path(args.run)
  summary = json.loads((run / 'summary.json').read_text())
  if args.kind == 'symbolic':
    bench, make, card, shipped = 'symbolic.md', symbolic_card_text, 'SYMBOLIC.md', checkpoints.SHIPPED_SYMBOLIC
  else:
    bench, make, card, shipped = 'regression.md', card_text, 'README.md', checkpoints.SHIPPED
  table = ROOT / 'benchmarks' / 'results' / bench
  out = shipped.parent / card
  out.write_text(make(summary, table.read_text() if table.exists() else None))
  if args.ship:
    shutil.copyfile(run / 'model.pt', shipped)
  print(f'wrote {out}' + (f' and {shipped}' if args.ship else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
