"""Writes the model card of a pretraining run (checkpoints/README.md) and ships its weights.

    python -m vizier_omnipred.pretraining.model_card runs/small [--ship]

The card is made from the run's summary.json, so every number in it is the run's own; the
regression table is appended from benchmarks/results/regression.md when it exists.
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
  hist = summary['history']
  rows = '\n'.join(f'| {h["step"]} | {h["train_loss"]:.4f} | {h["val_loss"]:.4f} |' for h in hist)
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

## Loss during pretraining

| step | train loss | held-out loss |
|---|---|---|
{rows}
"""
  if regression:
    text += '\n## Regression benchmark (benchmarks/regression.py)\n\n' + regression
  return text


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('run', help='pretraining run directory (summary.json, model.pt)')
  parser.add_argument('--ship', action='store_true', help='copy model.pt into the package')
  args = parser.parse_args(argv)
  run = pathlib.Path(args.run)
  summary = json.loads((run / 'summary.json').read_text())
  reg = ROOT / 'benchmarks' / 'results' / 'regression.md'
  out = checkpoints.SHIPPED.parent / 'README.md'
  out.write_text(card_text(summary, reg.read_text() if reg.exists() else None))
  if args.ship:
    shutil.copyfile(run / 'model.pt', checkpoints.SHIPPED)
  print(f'wrote {out}' + (f' and {checkpoints.SHIPPED}' if args.ship else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
