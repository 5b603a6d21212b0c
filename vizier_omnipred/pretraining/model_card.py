"""Writes the model card of a training run and ships its weights.

    python -m vizier_omnipred.pretraining.model_card runs/small [--ship]      # surrogate LM
    python -m vizier_omnipred.pretraining.model_card runs/icl2 --previous runs/icl --ship
    python -m vizier_omnipred.pretraining.model_card runs/symbolic --kind symbolic [--ship]

The card is made from the run's summary.json, so every number in it is the run's own; the
benchmark table (benchmarks/results/regression.md or symbolic.md) is appended when it exists.
A run that started from another run's weights (`pretrain --init-from`) names that run with
`--previous`: the card then counts both stages, and the loss curve shows them end to end.
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


def combine(previous: dict, summary: dict) -> dict:
  """One summary for two stages: `summary`'s run continued `previous`'s weights. Steps and
  wall time add up; the second stage's history is shifted to follow the first's."""
  steps, wall = previous['steps'], previous['wall_time_s']
  shifted = [dict(h, step=h['step'] + steps, elapsed_s=h['elapsed_s'] + wall)
             for h in summary['history']]
  return dict(summary, steps=steps + summary['steps'],
              wall_time_s=wall + summary['wall_time_s'], history=previous['history'] + shifted,
              stages=[previous, summary])


def _training_row(summary: dict) -> str:
  def one(s):
    cfg = s['train_config']
    return (f"{s['steps']} steps x {s['examples_per_step']} trials, AdamW lr"
            f" {cfg['learning_rate']} (warmup {cfg['warmup_steps']}, cosine to"
            f" {cfg['min_learning_rate_ratio']}x over {cfg['steps']} steps), weight decay"
            f" {cfg['weight_decay']}, clip {cfg['grad_clip']}, bf16 {cfg['bf16']}")
  stages = summary.get('stages')
  if not stages:
    return one(summary)
  first, second = stages
  c = second['train_config']['corpus']
  return (f"two stages: (1) {one(first)}, {first['wall_time_s'] / 60:.0f} min, on the prior"
          f" without conditional studies; (2) from stage 1's weights, {one(second)},"
          f" {second['wall_time_s'] / 60:.0f} min, the prior with"
          f" {c.get('conditional_fraction', 0):.0%} conditional-space studies")


def card_text(summary: dict, regression: str | None) -> str:
  cfg = summary['train_config']
  m = cfg['model']
  c = cfg['corpus']
  kinds = ', '.join(f'{k} {w:.0%}' for k, w in c['objective_weights'])
  conditional = c.get('conditional_fraction', 0.0)
  conditional_text = (
      f'; {conditional:.0%} of studies over conditional spaces (a categorical choice whose'
      ' branches have their own children, up to two levels; a GP draw per leaf)'
      if conditional else '')
  stages = summary.get('stages')
  reproduce = (f"`vizier-omnipred pretrain --out runs/icl --steps {cfg['steps']} --threads 1`,"
               ' then')
  if stages:
    first = stages[0]['train_config']
    reproduce = (
        f"`vizier-omnipred pretrain --out runs/icl --steps {first['steps']} --threads 1"
        " --conditional-fraction 0` (stage 1),"
        f" `vizier-omnipred pretrain --out runs/icl2 --init-from runs/icl/model.pt --steps"
        f" {cfg['steps']} --lr {cfg['learning_rate']} --threads 1` (stage 2; it stopped at its"
        ' time limit), then')
  text = f"""# Model card: omnipred-icl

The checkpoint `omnipred-small.pt` that `OmniPredRegressor.from_pretrained()` loads: an
in-context surrogate that reads a study's completed trials (the context) and the trials to
predict together, and writes each prediction's y as number tokens.

| | |
|---|---|
| architecture | encoder-decoder, d_model {m['d_model']}, {m['num_heads']} heads, {m['encoder_layers']} encoder + {m['decoder_layers']} decoder layers, MLP {m['d_ff']}; one encoder token per trial (its parameter items pooled) and per metadata item; queries attend to the context and themselves only |
| parameters | {summary['num_parameters']:,} |
| input | per parameter: name characters + value as sign/exponent/4 digits + symlog + two z-scores from the context's own statistics (linear, log), or category characters; a trial of a conditional space holds only its active parameters; per context trial its y (normalised by the context's range) as tokens + scalar; study metadata items; no positional order, no search-space bounds |
| output | y after a map of the context's y range onto [2, 3], as sign, exponent (E{m['y_min_exponent']}..E{m['y_max_exponent']}), {m['y_digits']} digits |
| data | episodes streamed from `vizier_omnipred.pretraining.corpus.IN_CONTEXT_CORPUS` (seed {summary['seed']}), a fresh study each: objectives {kinds} (GP: Matern 1/2, 3/2, 5/2 or RBF, ARD length scales log-uniform, unused dimensions, noise, input warping; BBOB: 16 functions shifted and rotated){conditional_text}; dims {c['min_dim']}-{c['max_dim']}; DOUBLE (linear/log), INTEGER, DISCRETE and CATEGORICAL parameters with realistic names and metadata; trials uniform or clustered near an optimum; context {cfg['min_context']}-{cfg['max_context']} trials (one size per batch), {cfg['queries_per_study']} queries. Held out: AttractiveSector, BuecheRastrigin, SharpRidge, Weierstrass, Gallagher21Me and a disjoint seed range |
| training | {_training_row(summary)} |
| hardware | {summary['world_size']} process(es) on {summary['device']} (one thread of a 2-core CPU; a second process builds batches) |
| wall time | {summary['wall_time_s'] / 60:.1f} min |
| final held-out loss | {summary['final_val_loss']:.4f} nats per y token (mean over context sizes) |

Reproduce: {reproduce}
`python -m vizier_omnipred.pretraining.model_card {'runs/icl2 --previous runs/icl' if stages else 'runs/icl'} --ship`.

![loss](omnipred-loss.png)

{_context_table(summary['history'])}
{_loss_table(summary['history'])}"""
  if regression:
    text += '\n## Regression benchmark (benchmarks/regression.py)\n\n' + regression
  return text


def _context_table(history: list[dict]) -> str:
  """Held-out loss by context size at a few points of the run: it must fall as the context
  grows, the sign that the model learns in context."""
  with_sizes = [h for h in history if h.get('by_context')]
  if not with_sizes:
    return ''
  sizes = sorted(with_sizes[-1]['by_context'], key=int)
  picks = sorted({0, len(with_sizes) // 4, len(with_sizes) // 2, len(with_sizes) - 1})
  cond_sizes = sorted(with_sizes[-1].get('conditional_by_context') or {}, key=int)

  def row(h):
    cond = h.get('conditional_by_context') or {}
    return (f'| {h["step"]} | ' + ' | '.join(f'{h["by_context"][k]:.4f}' for k in sizes)
            + ''.join(f' | {cond[k]:.4f}' if k in cond else ' | -' for k in cond_sizes) + ' |')

  rows = '\n'.join(row(with_sizes[i]) for i in picks)
  header = (' | '.join(f'{k} trials' for k in sizes)
            + ''.join(f' | conditional, {k} trials' for k in cond_sizes))
  return ('## Held-out loss by context size (nats per y token)\n\nFlat studies (held-out BBOB'
          ' functions and seeds)' + (' and held-out conditional-space studies' if cond_sizes
                                     else '') + '.\n\n| step | ' + header + ' |\n|---|'
          + '---|' * (len(sizes) + len(cond_sizes)) + '\n' + rows + '\n')


def loss_plot(history: list[dict], path: pathlib.Path) -> None:
  """Train and held-out loss over steps, and held-out loss per context size."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  steps = [h['step'] for h in history]
  axes[0].plot(steps, [h['train_loss'] for h in history], label='train (one batch)', alpha=0.6)
  axes[0].plot(steps, [h['val_loss'] for h in history], label='held-out (mean over sizes)')
  axes[0].set_xlabel('step')
  axes[0].set_ylabel('nats per y token')
  axes[0].legend()
  with_sizes = [h for h in history if h.get('by_context')]
  if with_sizes:
    for k in sorted(with_sizes[-1]['by_context'], key=int):
      axes[1].plot([h['step'] for h in with_sizes], [h['by_context'][k] for h in with_sizes],
                   label=f'{k} context trials')
    axes[1].set_xlabel('step')
    axes[1].set_title('held-out loss by context size', fontsize=10)
    axes[1].legend(fontsize=8)
  for ax in axes:
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def snapshot(run: pathlib.Path) -> dict:
  """Writes snapshot.pt and snapshot.json from a run's last.pt while it is still training
  (or after it was stopped): the same checkpoint format and card as a finished run's."""
  import torch  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.model import ModelConfig, OmniPredModel  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.training import run_summary  # pylint: disable=g-import-not-at-top
  info = json.loads((run / 'run.json').read_text())
  blob = torch.load(run / 'last.pt', map_location='cpu', weights_only=True)
  model_cfg = dict(info['train_config']['model'])
  model = OmniPredModel(ModelConfig.from_dict(model_cfg))
  model.load_state_dict(blob['model'])
  summary = run_summary(info, model, step=int(blob['step']), history=json.loads(blob['history']),
                        wall_time_s=float(blob['elapsed_s']))
  checkpoints.save(run / 'snapshot.pt', model,
                   card=checkpoints.card_from_summary('omnipred-icl', summary))
  (run / 'snapshot.json').write_text(json.dumps(summary, indent=1, default=str))
  return summary


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
  parser.add_argument('--previous', default=None, metavar='RUN',
                      help='the run whose weights this one started from (--init-from)')
  parser.add_argument('--snapshot', action='store_true',
                      help='card and weights from last.pt (a run still training, or stopped)')
  args = parser.parse_args(argv)
  run = pathlib.Path(args.run)
  if args.snapshot:
    summary = snapshot(run)
    weights = run / 'snapshot.pt'
  else:
    summary = json.loads((run / 'summary.json').read_text())
    weights = run / 'model.pt'
  if args.previous:
    summary = combine(json.loads((pathlib.Path(args.previous) / 'summary.json').read_text()),
                      summary)
  if args.kind == 'symbolic':
    bench, make, card, shipped = 'symbolic.md', symbolic_card_text, 'SYMBOLIC.md', checkpoints.SHIPPED_SYMBOLIC
  else:
    bench, make, card, shipped = 'regression.md', card_text, 'README.md', checkpoints.SHIPPED
  table = ROOT / 'benchmarks' / 'results' / bench
  out = shipped.parent / card
  out.write_text(make(summary, table.read_text() if table.exists() else None))
  if args.kind == 'omnipred':
    loss_plot(summary['history'], shipped.parent / 'omnipred-loss.png')
  if args.ship and args.kind == 'omnipred':
    # The shipped file's own card counts every stage (what `from_pretrained().card` shows).
    import torch  # pylint: disable=g-import-not-at-top
    blob = torch.load(weights, map_location='cpu', weights_only=True)
    blob['card'] = checkpoints.card_from_summary('omnipred-icl', summary)
    torch.save(blob, shipped)
  elif args.ship:
    shutil.copyfile(weights, shipped)
  print(f'wrote {out}' + (f' and {shipped}' if args.ship else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
