"""The model's commands of `vizier-omnipred` (the program itself: `designers/cli.py`).

    vizier-omnipred pretrain --out runs/x     # multi-task pretraining (torchrun for many GPUs)
    vizier-omnipred explain data.csv          # a closed-form formula for y (symbolic regression)
    vizier-omnipred explain-pretrain --out runs/s   # train the symbolic-regression model

`python -m vizier_omnipred.cli` runs these three alone (what `torchrun -m` starts on each
rank): nothing of the Vizier designers is imported.
"""

from __future__ import annotations

import argparse
import os
import sys

from vizier_omnipred import runtime


def _train(args, trainer, make_config) -> int:
  """Shared by both trainers: threads, config from the common flags, summary line."""
  import torch  # pylint: disable=g-import-not-at-top
  if args.threads:
    torch.set_num_threads(args.threads)
  common = dict(steps=args.steps, learning_rate=args.lr, bf16=args.bf16,
                eval_every=args.eval_every, checkpoint_every=args.eval_every,
                time_limit_s=args.time_limit, seed=args.seed)
  sizes = dict(d_model=args.d_model, encoder_layers=args.encoder_layers,
               decoder_layers=args.decoder_layers, d_ff=2 * args.d_model, num_heads=args.heads)
  summary = trainer.train(make_config(sizes, common), args.out, resume=not args.no_resume,
                          progress=not args.quiet)
  if int(os.environ.get('RANK', '0')) == 0:
    print(f'steps {summary["steps"]}  final val loss {summary["final_val_loss"]:.4f}  '
          f'wall {summary["wall_time_s"]:.0f}s  -> {args.out}/model.pt')
  return 0


def _pretrain(args) -> int:
  import attrs  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.model import ModelConfig  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.pretraining import trainer  # pylint: disable=g-import-not-at-top
  corpus = trainer.IN_CONTEXT_CORPUS
  if args.conditional_fraction is not None:
    corpus = attrs.evolve(corpus, conditional_fraction=args.conditional_fraction)
  if args.zoom_fraction is not None:
    corpus = attrs.evolve(corpus, zoom_fraction=args.zoom_fraction)
  if args.multi_output_fraction is not None:
    corpus = attrs.evolve(corpus, multi_output_fraction=args.multi_output_fraction)
  if args.length_scale_dim_exponent is not None:
    corpus = attrs.evolve(corpus, gp=attrs.evolve(
        corpus.gp, length_scale_dim_exponent=args.length_scale_dim_exponent))
  if args.sparse_relevance is not None:
    corpus = attrs.evolve(corpus, gp=attrs.evolve(
        corpus.gp, sparse_relevance_probability=args.sparse_relevance))
  family = trainer.FamilyConfig()
  if args.unrelated_fraction is not None:
    family = attrs.evolve(family, unrelated_fraction=args.unrelated_fraction)
  if args.from_database:
    from vizier_omnipred.database import redacted  # pylint: disable=g-import-not-at-top
    from vizier_omnipred.pretraining import user_studies  # pylint: disable=g-import-not-at-top
    holdout = attrs.fields(trainer.TrainConfig).database_holdout.default
    own, held = user_studies.split(args.from_database, holdout)
    print(f'{redacted(args.from_database)}: {len(own)} finished studies to train on, '
          f'{len(held)} held out for the report', flush=True)
    if not own:
      raise SystemExit(f'--from-database {redacted(args.from_database)}: no finished study with '
                       f'{user_studies.MIN_TRIALS}+ completed trials outside the held-out share.')
  return _train(args, trainer, lambda sizes, common: trainer.TrainConfig(
      model=ModelConfig(**sizes, slot_binding=args.slot_binding, prior_gate=args.prior_gate,
                        current_slots=args.current_slots,
                        prior_studies=(args.prior_studies or args.prior_gate
                                       or args.current_slots or args.family_fraction > 0)),
      family_fraction=args.family_fraction, corpus=corpus, family=family,
      database_url=args.from_database, database_fraction=args.database_fraction,
      trials_per_batch=args.trials_per_batch,
      queries_per_study=args.queries_per_study, max_context=args.max_context,
      prefetch=args.prefetch, data_workers=args.data_workers, init_from=args.init_from,
      random_slots=args.random_slots, train_only=tuple(filter(None, args.train_only.split(','))),
      warmup_steps=min(300, args.steps // 10 + 1), **common))


def _explain_pretrain(args) -> int:
  from vizier_omnipred.symbolic import trainer  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.symbolic.model import SymbolicConfig  # pylint: disable=g-import-not-at-top
  return _train(args, trainer, lambda sizes, common: trainer.SymbolicTrainConfig(
      model=SymbolicConfig(**sizes), batch_size=args.batch_size,
      warmup_steps=min(500, args.steps // 10 + 1), **common))


def _training_flags(p, *, steps: int, encoder_layers: int, decoder_layers: int) -> None:
  p.add_argument('--out', required=True, help='run directory (resumes from last.pt there)')
  p.add_argument('--steps', type=int, default=steps)
  p.add_argument('--lr', type=float, default=1e-3)
  p.add_argument('--d-model', type=int, default=128)
  p.add_argument('--heads', type=int, default=4)
  p.add_argument('--encoder-layers', type=int, default=encoder_layers)
  p.add_argument('--decoder-layers', type=int, default=decoder_layers)
  p.add_argument('--eval-every', type=int, default=500)
  p.add_argument('--time-limit', type=float, default=None, help='seconds of training')
  p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
  p.add_argument('--bf16', action='store_true')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--no-resume', action='store_true')
  p.add_argument('--quiet', action='store_true')


def _explain(args) -> int:
  from vizier_omnipred.symbolic import cli  # pylint: disable=g-import-not-at-top
  return cli.main(args)


def add_model_commands(sub) -> None:
  """Adds pretrain, explain and explain-pretrain to an argparse subparsers object."""
  p = sub.add_parser('pretrain', help='in-context pretraining on synthetic studies')
  _training_flags(p, steps=20_000, encoder_layers=4, decoder_layers=2)
  p.add_argument('--trials-per-batch', type=int, default=1024,
                 help='context + query trials per step and rank')
  p.add_argument('--queries-per-study', type=int, default=16)
  p.add_argument('--max-context', type=int, default=100)
  p.add_argument('--conditional-fraction', type=float, default=None,
                 help='share of conditional-space studies in the prior (default: the'
                 ' in-context corpus\'s, 0.15)')
  p.add_argument('--multi-output-fraction', type=float, default=None,
                 help='share of studies whose trials carry other metrics as inputs (several'
                 ' objectives; default: the in-context corpus\'s, 0.15)')
  p.add_argument('--zoom-fraction', type=float, default=None,
                 help='share of studies whose clustered trials close in on the optimum, as a'
                 ' converging optimiser\'s do (default: the in-context corpus\'s, 0)')
  p.add_argument('--slot-binding', action='store_true',
                 help='bind each trial\'s values to per-parameter slot codes in its token')
  p.add_argument('--length-scale-dim-exponent', type=float, default=None,
                 help='GP-prior length scales times dim ** this (0.5: sqrt(d) scaling;'
                 ' default: the in-context corpus\'s, 0)')
  p.add_argument('--prior-studies', action='store_true',
                 help='a model that also reads prior studies\' trials (switched on silently '
                      'in an --init-from model)')
  p.add_argument('--prior-gate', action='store_true',
                 help='weigh each prior study in attention by a learned gate on how well it '
                      'predicts the current study\'s trials (implies --prior-studies; switched '
                      'on silently in an --init-from model)')
  p.add_argument('--current-slots', action='store_true',
                 help='rank parameter slots among the current study\'s names only, so prior '
                      'studies\' other parameters do not move them (implies --prior-studies)')
  p.add_argument('--train-only', default='', metavar='PREFIXES',
                 help='comma-separated weight-name prefixes: only those weights learn (e.g. '
                      'prior_gate. with --init-from); default: all')
  p.add_argument('--family-fraction', type=float, default=0.0,
                 help='share of episodes that are study families: the current study with 0-3 '
                      'related or unrelated prior studies (implies --prior-studies)')
  p.add_argument('--unrelated-fraction', type=float, default=None,
                 help='of a family\'s prior studies, the share drawn unrelated to the current '
                      'study (default: the family prior\'s, 0.25)')
  p.add_argument('--from-database', default=None, metavar='URL',
                 help='a Vizier database (SQLite path URL or PostgreSQL URL) whose finished '
                      'studies join the synthetic prior; a fifth of them is held out and '
                      'reported')
  p.add_argument('--database-fraction', type=float, default=0.2,
                 help='share of episodes from --from-database (at most 0.5)')
  p.add_argument('--random-slots', type=int, default=0, metavar='K',
                 help='bind each training study\'s parameters to a random subset of slots'
                 ' 0..K-1 instead of those of their name ranks (0: ranks)')
  p.add_argument('--sparse-relevance', type=float, default=None,
                 help='share of GP-prior draws that depend on 1 to half of their parameters'
                 ' (default: the in-context corpus\'s, 0)')
  p.add_argument('--init-from', default=None, metavar='CHECKPOINT',
                 help='start a new run from these weights (e.g. the shipped checkpoint);'
                 ' ignored when --out resumes')
  p.add_argument('--prefetch', type=int, default=4,
                 help='batches worker processes build ahead (0: none)')
  p.add_argument('--data-workers', type=int, default=1,
                 help='processes building batches (on a GPU, most of the CPU cores)')
  p.set_defaults(fn=_pretrain)

  p = sub.add_parser('explain', help='a closed-form formula for y (symbolic regression)')
  p.add_argument('csv', nargs='?', help='CSV file with a header row')
  p.add_argument('--target', default=None, help='column to explain (default: the last)')
  p.add_argument('--inputs', default=None, help='comma-separated input columns/parameters')
  p.add_argument('--server', default=None, help='HOST:PORT of a Vizier server')
  p.add_argument('--study', default=None, help='OWNER/NAME of the study on --server')
  p.add_argument('--metric', default=None, help='metric to explain (default: the only one)')
  p.add_argument('--checkpoint', default=None, help='symbolic model (default: the shipped one)')
  p.add_argument('--samples', type=int, default=32, help='sampled candidate formulas')
  p.add_argument('--min-r2', type=float, default=0.9, help='held-out R2 needed to report a formula')
  p.add_argument('--no-refine', action='store_true', help='skip BFGS (the paper\'s ablation)')
  p.add_argument('--seed', type=int, default=0)
  p.set_defaults(fn=_explain)

  p = sub.add_parser('explain-pretrain', help='train the symbolic-regression model')
  _training_flags(p, steps=12_000, encoder_layers=2, decoder_layers=4)
  p.add_argument('--batch-size', type=int, default=32)
  p.set_defaults(fn=_explain_pretrain)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='vizier-omnipred', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_model_commands(parser.add_subparsers(dest='command', required=True))
  args = parser.parse_args(argv)
  runtime.configure_openmp()  # before a command loads torch
  return args.fn(args)


if __name__ == '__main__':
  sys.exit(main())
