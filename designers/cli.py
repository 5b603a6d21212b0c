"""`vizier-omnipred`: demo, serve, pretrain, explain, explain-pretrain.

    vizier-omnipred demo                      # optimise a shifted BBOB function, table vs random
    vizier-omnipred serve --port 6006         # Vizier server where OMNIPRED is an algorithm
    vizier-omnipred pretrain --out runs/x     # multi-task pretraining (torchrun for many GPUs)
    vizier-omnipred explain data.csv          # a closed-form formula for y (symbolic regression)
    vizier-omnipred explain-pretrain --out runs/s   # train the symbolic-regression model

The model's commands are defined beside the model (`vizier_omnipred.cli`); serve and demo here,
beside the designer they run.
"""

from __future__ import annotations

import argparse
import sys

from vizier_omnipred import cli as model_cli
from vizier_omnipred import runtime


def _serve(args) -> int:
  from designers import serving  # pylint: disable=g-import-not-at-top
  return serving.serve(args)


def _demo(args) -> int:
  from designers import demo  # pylint: disable=g-import-not-at-top
  return demo.main(args)


def _add_serve(sub) -> None:
  p = sub.add_parser('serve', help='a Vizier server (or Pythia service) with OMNIPRED')
  p.add_argument('--host', default='localhost')
  p.add_argument('--port', type=int, default=6006)
  p.add_argument('--database', default=None,
                 help='SQLite file path or SQLAlchemy URL, e.g. postgresql://user:pw@host/db '
                      '(default: $XDG_DATA_HOME/vizier-omnipred/vizier.db); the location is '
                      'printed, without the password')
  p.add_argument('--tls-cert', default=None, help='PEM certificate: serve gRPC over TLS')
  p.add_argument('--tls-key', default=None, help='PEM private key for --tls-cert')
  p.add_argument('--tls-client-ca', default=None,
                 help='PEM CA certificate: admit only clients presenting a certificate it '
                      'signed (mutual TLS; needs --tls-cert/--tls-key)')
  p.add_argument('--checkpoint', default=None,
                 help='the surrogate\'s weights (default: the shipped checkpoint)')
  p.add_argument('--transfer', choices=('listed', 'auto'), default='listed',
                 help='prior studies a study reads: the ones its config metadata lists '
                      '(listed), or those and finished studies of the same owner that share '
                      'its parameters and metric (auto); needs a checkpoint trained with them')
  p.add_argument('--pythia-only', action='store_true',
                 help='serve only Pythia for an existing Vizier server (split deployment)')
  p.add_argument('--vizier-endpoint', default=None, help='HOST:PORT of that Vizier server')
  p.set_defaults(fn=_serve)


def _add_demo(sub) -> None:
  p = sub.add_parser('demo', help='optimise a shifted BBOB function with the shipped model')
  p.add_argument('--function', default='Rastrigin')
  p.add_argument('--dim', type=int, default=4)
  p.add_argument('--trials', type=int, default=40)
  p.add_argument('--seed', type=int, default=0)
  p.set_defaults(fn=_demo)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='vizier-omnipred', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  model_cli.add_model_commands(sub)
  _add_serve(sub)
  _add_demo(sub)
  args = parser.parse_args(argv)
  runtime.configure_openmp()  # before a command loads torch
  return args.fn(args)


if __name__ == '__main__':
  sys.exit(main())
