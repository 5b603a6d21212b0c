"""Writes the model card of a training run and ships its weights.

    python -m vizier_omnipred.pretraining.model_card runs/small [--ship]      # surrogate LM
    python -m vizier_omnipred.pretraining.model_card runs/icl3 --previous runs/icl runs/icl2 --ship
    python -m vizier_omnipred.pretraining.model_card runs/symbolic --kind symbolic [--ship]
    python -m vizier_omnipred.pretraining.model_card runs/transfer --kind transfer --snapshot \
        --previous vizier_omnipred/checkpoints/omnipred-small.json --ship   # prior studies

The card is made from the run's summary.json, so every number in it is the run's own; the
benchmark table (benchmarks/results/regression.md, symbolic.md, or for the transfer model
prior_averaging.md) is appended when it exists.
A run that started from another run's weights (`pretrain --init-from`) names the runs before
it with `--previous`, earliest first: the card then counts every stage, and the loss curve shows
them end to end. A run from the shipped weights names the shipped summary instead
(`--previous vizier_omnipred/checkpoints/omnipred-small.json`, written by every `--ship`).
Cards: checkpoints/README.md (surrogate), checkpoints/TRANSFER.md (the surrogate trained to read
prior studies) and checkpoints/SYMBOLIC.md (symbolic regression);
without `--ship` the card and its loss plot are written into the run directory instead, so a
look at a run (`--snapshot` of one still training) never replaces the shipped model's card.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import shutil
import sys
from typing import Sequence

from vizier_omnipred import checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[2]


# The shipped surrogate's summary (every stage, with its loss history): `--previous` takes it
# as the stages before a run that continued the shipped weights (`pretrain --init-from`).
SHIPPED_SUMMARY = checkpoints.SHIPPED.with_suffix('.json')


def previous_summary(path: pathlib.Path) -> dict:
  """A run directory (its summary.json) or a summary file such as `SHIPPED_SUMMARY`."""
  if path.is_dir():
    return dict(json.loads((path / 'summary.json').read_text()), run_dir=str(path).rstrip('/'))
  if path.suffix == '.json' and path.is_file():
    return json.loads(path.read_text())
  raise FileNotFoundError(f'--previous {path}: neither a run directory nor a summary .json file')


def combine(previous: dict, summary: dict) -> dict:
  """One summary for stages run one after another: `summary`'s run continued `previous`'s
  weights (itself one stage or already combined). Steps and wall time add up; the later
  stage's history is shifted to follow the earlier ones'."""
  steps, wall = previous['steps'], previous['wall_time_s']
  shifted = [dict(h, step=h['step'] + steps, elapsed_s=h['elapsed_s'] + wall)
             for h in summary['history']]
  return dict(summary, steps=steps + summary['steps'],
              wall_time_s=wall + summary['wall_time_s'], history=previous['history'] + shifted,
              stages=previous.get('stages', [previous]) + [summary])


def _families(family_fraction: float, family: dict | None) -> str:
  return (f'{family_fraction:.0%} of episodes study families (0-3 prior studies in context,'
          f' each unrelated with probability {_unrelated_fraction(family):.0%})')


def _prior_mix(corpus: dict, family_fraction: float = 0.0, family: dict | None = None) -> str:
  conditional = corpus.get('conditional_fraction', 0.0)
  multi = corpus.get('multi_output_fraction', 0.0)
  families = f', {_families(family_fraction, family)}' if family_fraction else ''
  if not conditional and not multi:
    return 'the flat prior only' + families
  return (f'the prior with {conditional:.0%} conditional-space and {multi:.0%} multi-output'
          ' studies' + families)


def _unrelated_fraction(family: dict | None) -> float:
  """A run's share of unrelated prior studies (`FamilyConfig.unrelated_fraction`; a summary
  that does not record its family config was made with the default)."""
  from vizier_omnipred.pretraining.family_prior import FamilyConfig  # pylint: disable=g-import-not-at-top
  default = FamilyConfig().unrelated_fraction
  return (family or {}).get('unrelated_fraction', default)


def _training_row(summary: dict) -> str:
  def one(s):
    cfg = s['train_config']
    # With a time limit the cosine follows whichever runs out first (training.cosine_lr).
    horizon = f"{cfg['steps']} steps" + (f" or {cfg['time_limit_s']:.0f} s, whichever came first"
                                         if cfg.get('time_limit_s') else '')
    return (f"{s['steps']} steps x {s['examples_per_step']} trials, AdamW lr"
            f" {cfg['learning_rate']} (warmup {cfg['warmup_steps']}, cosine to"
            f" {cfg['min_learning_rate_ratio']}x over {horizon}), weight decay"
            f" {cfg['weight_decay']}, clip {cfg['grad_clip']}, bf16 {cfg['bf16']}"
            + (' (stopped early: its time limit, or a snapshot of the run)'
               if s['steps'] < cfg['steps'] else ''))
  stages = summary.get('stages')
  if not stages:
    return one(summary)
  parts = []
  for k, s in enumerate(stages, start=1):
    start = f"from stage {k - 1}'s weights, " if k > 1 else ''
    cfg = s['train_config']
    mix = _prior_mix(cfg['corpus'], cfg.get('family_fraction', 0.0), cfg.get('family'))
    parts.append(f"({k}) {start}{one(s)}, {s['wall_time_s'] / 60:.0f} min, {mix}")
  return f'{len(stages)} stages: ' + '; '.join(parts)


# pretrain's flag for each model size it sets (d_ff follows d_model).
_SIZE_FLAGS = {'d_model': '--d-model', 'num_heads': '--heads', 'encoder_layers': '--encoder-layers',
               'decoder_layers': '--decoder-layers'}


def _size_flags(model: dict) -> str:
  """The size flags a stage needs beyond pretrain's defaults."""
  from vizier_omnipred.model import ModelConfig  # pylint: disable=g-import-not-at-top
  default = ModelConfig()
  flags = ''.join(f' {flag} {model[k]}' for k, flag in _SIZE_FLAGS.items()
                  if k in model and model[k] != getattr(default, k))
  return (flags + (' --slot-binding' if model.get('slot_binding') else '')
          + (' --prior-studies' if model.get('prior_studies') else '')
          + (' --prior-gate' if model.get('prior_gate') else '')
          + (' --current-slots' if model.get('current_slots') else ''))


def _slot_binding(model: dict) -> str:
  return (', plus its numeric values bound to per-parameter slot codes'
          if model.get('slot_binding') else '')


def _seed_note(summary: dict) -> str:
  """The held-out episodes are drawn from a run's seed: say so where stages' seeds differ."""
  stages = summary.get('stages') or [summary]
  seeds = [s['train_config'].get('seed', 0) for s in stages]
  if len(set(seeds)) < 2:
    return ''
  which = ', '.join(f'stage {k} seed {seed}' for k, seed in enumerate(seeds, start=1))
  return ('\nThe held-out episodes are drawn from each run\'s seed (' + which + '): compare'
          ' losses within a stage; a step between stages of different seeds is partly the'
          ' change of episodes.\n')


def _episodes_of_last(summary: dict) -> str:
  """Where stages drew their held-out episodes from different seeds, whose the final loss is."""
  stages = summary.get('stages') or [summary]
  if len({s['train_config'].get('seed', 0) for s in stages}) < 2:
    return ''
  return f", on the last stage's held-out episodes, seed {stages[-1]['train_config'].get('seed', 0)}"


def _stage_ends(summary: dict) -> list[int]:
  """The combined step at which each stage ended."""
  return list(itertools.accumulate(s['steps'] for s in summary.get('stages') or [summary]))


def _machine_flags(stage: dict) -> str:
  """How a stage ran: one CPU thread, or a GPU's flags (bf16, batch, workers, time limit)."""
  cfg = stage['train_config']
  flags = ' --threads 1' if stage.get('device', 'cpu') == 'cpu' else ''
  if cfg.get('trials_per_batch', 1024) != 1024:
    flags += f" --trials-per-batch {cfg['trials_per_batch']}"
  if cfg.get('bf16'):
    flags += ' --bf16'
  if cfg.get('data_workers', 1) > 1:
    flags += f" --data-workers {cfg['data_workers']}"
  if cfg.get('time_limit_s'):
    flags += f" --time-limit {cfg['time_limit_s']:.0f}"
  return flags


def _hardware(summary: dict) -> str:
  """Where each stage ran (stages on the same machine kind are named together)."""
  stages = summary.get('stages') or [summary]

  def one(s):
    workers = s['train_config'].get('data_workers', 1)
    if s.get('device', 'cpu') == 'cpu':
      return 'one thread of a 2-core CPU; a second process builds batches'
    return (f"{s.get('device_name', s['device'])}, {s['world_size']} process(es);"
            f" {workers} processes build batches")
  groups: list[tuple[str, list[int]]] = []
  for k, s in enumerate(stages, start=1):
    if groups and groups[-1][0] == one(s):
      groups[-1][1].append(k)
    else:
      groups.append((one(s), [k]))
  if len(groups) == 1:
    return groups[0][0]
  return '; '.join(f"stage{'s' if len(ks) > 1 else ''} "
                   f"{ks[0]}{'-' + str(ks[-1]) if len(ks) > 1 else ''}: {text}"
                   for text, ks in groups)


def _reproduce(summary: dict, card_flags: str = '') -> str:
  """The commands that made the run(s), stage by stage; `card_flags`: the card command's own
  (its `--kind`)."""
  stages = summary.get('stages') or [summary]
  commands = []
  for k, s in enumerate(stages):
    cfg = s['train_config']
    c = cfg['corpus']
    cmd = f"vizier-omnipred pretrain --out {s.get('run_dir', 'runs/icl')} --steps {cfg['steps']}"
    if k:
      cmd += f" --init-from {stages[k - 1].get('run_dir', 'runs/previous')}/model.pt"
    cmd += f" --lr {cfg['learning_rate']}" + _machine_flags(s)
    cmd += (f" --conditional-fraction {c.get('conditional_fraction', 0.0)}"
            f" --multi-output-fraction {c.get('multi_output_fraction', 0.0)}")
    exponent = c.get('gp', {}).get('length_scale_dim_exponent', 0.0)
    if exponent:
      cmd += f' --length-scale-dim-exponent {exponent}'
    sparse = c.get('gp', {}).get('sparse_relevance_probability', 0.0)
    if sparse:
      cmd += f' --sparse-relevance {sparse}'
    if c.get('zoom_fraction'):
      cmd += f" --zoom-fraction {c['zoom_fraction']}"
    if cfg.get('random_slots'):
      cmd += f" --random-slots {cfg['random_slots']}"
    if cfg.get('family_fraction'):
      cmd += f" --family-fraction {cfg['family_fraction']}"
      unrelated = _unrelated_fraction(cfg.get('family'))
      if unrelated != _unrelated_fraction(None):
        cmd += f' --unrelated-fraction {unrelated}'
    if cfg.get('database_url'):
      cmd += ' --from-database URL'
    if cfg.get('train_only'):
      cmd += f" --train-only {','.join(cfg['train_only'])}"
    cmd += _size_flags(cfg['model'])
    if cfg.get('seed'):
      cmd += f" --seed {cfg['seed']}"
    commands.append(f'`{cmd}`')
  runs = [s.get('run_dir', 'runs/icl') for s in stages]
  previous = f" --previous {' '.join(runs[:-1])}" if len(runs) > 1 else ''
  return (', then '.join(commands) + ', then\n'
          f'`python -m vizier_omnipred.pretraining.model_card {runs[-1]}{card_flags}{previous}'
          ' --ship`.')


def card_text(summary: dict, regression: str | None, *, file: str = 'omnipred-small.pt',
              loaded_by: str = '`OmniPredRegressor.from_pretrained()` loads',
              plot: str = 'omnipred-loss.png', name: str = 'omnipred-icl',
              benchmark: str = 'Regression benchmark (benchmarks/regression.py)',
              card_flags: str = '') -> str:
  """The card's text; `regression`: the benchmark table appended under `benchmark`;
  `card_flags`: what the reproduce line's card command needs besides the runs (`--kind`)."""
  cfg = summary['train_config']
  m = cfg['model']
  c = cfg['corpus']
  kinds = ', '.join(f'{k} {w:.0%}' for k, w in c['objective_weights'])
  conditional = c.get('conditional_fraction', 0.0)
  zoom_text = (f" ({c['zoom_fraction']:.0%} of studies zooming in on it)"
               if c.get('zoom_fraction') else '')
  conditional_text = (
      f'; {conditional:.0%} of studies over conditional spaces (a categorical choice whose'
      ' branches have their own children, up to two levels; a GP draw per leaf)'
      if conditional else '')
  multi = c.get('multi_output_fraction', 0.0)
  if multi:
    conditional_text += (
        f'; {multi:.0%} of studies whose trials also carry 1-2 other metrics as input items (a'
        ' mix of the target, correlation -1..1, and an independent GP draw; some values'
        ' missing): the chain rule\'s read for several objectives')
  if cfg.get('family_fraction'):
    conditional_text += '; ' + _families(cfg['family_fraction'], cfg.get('family'))
  text = f"""# Model card: {name}

The checkpoint `{file}` that {loaded_by}: an
in-context surrogate that reads a study's completed trials (the context) and the trials to
predict together, and writes each prediction's y as number tokens.

| | |
|---|---|
| architecture | encoder-decoder, d_model {m['d_model']}, {m['num_heads']} heads, {m['encoder_layers']} encoder + {m['decoder_layers']} decoder layers, MLP {m['d_ff']}; one encoder token per trial (its parameter items pooled{_slot_binding(m)}) and per metadata item; queries attend to the context and themselves only |
| parameters | {summary['num_parameters']:,} |
| input | per parameter: name characters + value as sign/exponent/4 digits + symlog + two z-scores from the context's own statistics (linear, log), or category characters; a trial of a conditional space holds only its active parameters; with several objectives, a trial's values of the earlier objectives as number items; per context trial its y (normalised by the context's range) as tokens + scalar; study metadata items; no positional order, no search-space bounds |
| output | y after a map of the context's y range onto [2, 3], as sign, exponent (E{m['y_min_exponent']}..E{m['y_max_exponent']}), {m['y_digits']} digits |
| data | episodes streamed from `vizier_omnipred.pretraining.corpus.IN_CONTEXT_CORPUS` (seed {summary['seed']}), a fresh study each: objectives {kinds} (GP: Matern 1/2, 3/2, 5/2 or RBF, ARD length scales log-uniform, unused dimensions, noise, input warping; BBOB: 16 functions shifted and rotated){conditional_text}; dims {c['min_dim']}-{c['max_dim']}; DOUBLE (linear/log), INTEGER, DISCRETE and CATEGORICAL parameters with realistic names and metadata; trials uniform or clustered near an optimum{zoom_text}; context {cfg['min_context']}-{cfg['max_context']} trials (one size per batch), {cfg['queries_per_study']} queries. Held out: AttractiveSector, BuecheRastrigin, SharpRidge, Weierstrass, Gallagher21Me and a disjoint seed range |
| training | {_training_row(summary)} |
| hardware | {_hardware(summary)} |
| wall time | {summary['wall_time_s'] / 60:.1f} min |
| final held-out loss | {summary['final_val_loss']:.4f} nats per y token (mean over context sizes{_episodes_of_last(summary)}) |

Reproduce: {_reproduce(summary, card_flags)}

![loss]({plot})
{_seed_note(summary)}
{_context_table(summary['history'], _stage_ends(summary))}
{_prior_study_table(summary['history'])}
{_loss_table(summary['history'])}"""
  if regression:
    text += f'\n## {benchmark}\n\n' + regression
  return text


def _context_table(history: list[dict], stage_ends: Sequence[int] = ()) -> str:
  """Held-out loss by context size at a few points of the run: it must fall as the context
  grows, the sign that the model learns in context."""
  with_sizes = [h for h in history if h.get('by_context')]
  if not with_sizes:
    return ''
  sizes = sorted(with_sizes[-1]['by_context'], key=int)
  picks = sorted({0, len(with_sizes) // 4, len(with_sizes) // 2, len(with_sizes) - 1})
  extra = [(key, label) for key, label in (('conditional_by_context', 'conditional'),
                                            ('multi_output_by_context', 'multi-output'))
           if with_sizes[-1].get(key)]
  columns = [(key, label, k) for key, label in extra
             for k in sorted(with_sizes[-1][key], key=int)]
  # The last evaluation of every stage, so each stage's effect shows.
  picks = sorted(set(picks) | {i for i, h in enumerate(with_sizes) if h['step'] in stage_ends})

  def cell(h, key, k):
    # Sizes are ints in a live summary and strings once read back from JSON; a stage may have
    # measured other sizes than the last one.
    by_size = {int(size): loss for size, loss in (h.get(key) or {}).items()}
    return f'{by_size[int(k)]:.4f}' if int(k) in by_size else '-'

  def row(h):
    cells = [cell(h, 'by_context', k) for k in sizes] + [cell(h, key, k) for key, _, k in columns]
    start = '' if 'train_loss' in h else ' (stage start)'  # the weights before a stage trained
    return f'| {h["step"]}{start} | ' + ' | '.join(cells) + ' |'

  rows = '\n'.join(row(with_sizes[i]) for i in picks)
  header = ' | '.join([f'{k} trials' for k in sizes]
                      + [f'{label}, {k} trials' for _, label, k in columns])
  kinds = ['flat studies (held-out BBOB functions and seeds)'] + [
      f'held-out {label} studies' for _, label in extra]
  studies = ', '.join(kinds[:-1]) + ' and ' + kinds[-1] if len(kinds) > 1 else kinds[0]
  return ('## Held-out loss by context size (nats per y token)\n\n' + studies[0].upper()
          + studies[1:] + '.\n\n| step | ' + header + ' |\n|---|'
          + '---|' * (len(sizes) + len(columns)) + '\n' + rows + '\n')


def _prior_study_table(history: list[dict]) -> str:
  """Held-out families: loss at each current-study size with 2 related prior studies, with 2
  unrelated ones instead, and with none (same current trials): transfer shows as related
  below none, and robustness as unrelated no higher than none. '' for a model without prior
  studies."""
  rows = [h for h in history if h.get('family_by_context')]
  if not rows:
    return ''
  relations = ('related', 'unrelated', 'none')
  sizes = sorted(rows[-1]['family_by_context']['none'], key=int)
  picks = sorted({0, len(rows) // 2, len(rows) - 1})

  def cells(h):
    by = h['family_by_context']
    return [f'{by[r][k]:.4f}' for k in sizes for r in relations]
  header = ' | '.join(f'{k} trials, {r}' for k in sizes for r in relations)
  lines = [f'| {rows[i]["step"]} | ' + ' | '.join(cells(rows[i])) + ' |' for i in picks]
  return ('## Held-out loss with prior studies (nats per y token)\n\nHeld-out families '
          '(`family_prior`): the current study at each size beside 2 related prior studies '
          'of 50 trials, 2 unrelated ones, or none; the same current trials in all three.\n\n'
          f'| step | {header} |\n|---|' + '---|' * (len(sizes) * len(relations)) + '\n'
          + '\n'.join(lines) + '\n')


def loss_plot(history: list[dict], path: pathlib.Path) -> None:
  """Train and held-out loss over steps, and held-out loss per context size."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  steps = [h['step'] for h in history]
  trained = [h for h in history if 'train_loss' in h]  # a stage's start has no train loss
  axes[0].plot([h['step'] for h in trained], [h['train_loss'] for h in trained],
               label='train (one batch)', alpha=0.6)
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
  def train(h):
    return f'{h["train_loss"]:.4f}' if 'train_loss' in h else '- (stage start)'

  rows = '\n'.join(f'| {h["step"]} | {train(h)} | {h["val_loss"]:.4f} |' for h in history)
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
  parser.add_argument('--kind', choices=('omnipred', 'transfer', 'symbolic'), default='omnipred')
  parser.add_argument('--ship', action='store_true', help='copy model.pt into the package')
  parser.add_argument('--previous', nargs='+', default=(), metavar='RUN',
                      help='the runs whose weights this one continued (--init-from), earliest'
                      ' first: run directories, or the shipped summary omnipred-small.json')
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
  summary['run_dir'] = str(args.run).rstrip('/')
  if args.previous:
    earlier = [previous_summary(pathlib.Path(path)) for path in args.previous]
    combined = earlier[0]
    for later in earlier[1:] + [summary]:
      combined = combine(combined, later)
    summary = combined
  plot = 'omnipred-loss.png'
  summary_file = SHIPPED_SUMMARY
  if args.kind == 'symbolic':
    bench, make, card, shipped = 'symbolic.md', symbolic_card_text, 'SYMBOLIC.md', checkpoints.SHIPPED_SYMBOLIC
  elif args.kind == 'transfer':
    shipped, plot = checkpoints.SHIPPED_TRANSFER, 'transfer-loss.png'
    summary_file = shipped.with_suffix('.json')
    bench, card = 'prior_averaging.md', 'TRANSFER.md'
    make = lambda s, table: card_text(  # pylint: disable=g-long-lambda
        s, table, file=shipped.name, plot=plot, name='omnipred-transfer',
        loaded_by='`OmniPredRegressor.from_pretrained(checkpoints.SHIPPED_TRANSFER)` loads '
                  '(`OmniPredDesigner.set_priors` needs one like it)',
        benchmark='Unrelated prior studies, read or averaged (benchmarks/experiments/'
                  'prior_averaging.py)', card_flags=' --kind transfer')
  else:
    bench, make, card, shipped = 'regression.md', card_text, 'README.md', checkpoints.SHIPPED
  table = ROOT / 'benchmarks' / 'results' / bench
  # Only a shipped run's card replaces the package's; any other is written beside the run.
  where = shipped.parent if args.ship else run
  out = where / card
  out.write_text(make(summary, table.read_text() if table.exists() else None))
  if args.kind != 'symbolic':
    loss_plot(summary['history'], where / plot)
  if args.ship and args.kind != 'symbolic':
    # The shipped file's own card counts every stage (what `from_pretrained().card` shows);
    # the summary beside it lets a later run continue from the shipped file alone.
    import torch  # pylint: disable=g-import-not-at-top
    blob = torch.load(weights, map_location='cpu', weights_only=True)
    blob['card'] = checkpoints.card_from_summary('omnipred-icl', summary)
    torch.save(blob, shipped)
    summary_file.write_text(json.dumps(summary, indent=1, default=str))
  elif args.ship:
    shutil.copyfile(weights, shipped)
  print(f'wrote {out}' + (f' and {shipped}' if args.ship else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
