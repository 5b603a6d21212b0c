import json
import os
import pathlib
import socket
import subprocess
import sys

import attrs
import numpy as np
import pytest

from vizier_omnipred import OmniPredRegressor
from vizier_omnipred.pretraining.corpus import CorpusConfig
from vizier_omnipred.pretraining.trainer import TrainConfig, train
from tests.conftest import TINY

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = TrainConfig(model=TINY, corpus=CorpusConfig(max_dim=3, pool_size=16), steps=6,
                    studies_per_batch=2, trials_per_study=8, eval_every=3, checkpoint_every=3,
                    eval_studies=2, warmup_steps=2)


def test_training_writes_a_loadable_checkpoint_and_resumes(tmp_path):
  first = train(attrs.evolve(SMALL, steps=3), tmp_path, progress=False)
  assert first['steps'] == 3
  summary = train(SMALL, tmp_path, progress=False)  # resumes from last.pt at step 3
  assert summary['steps'] == 6
  assert [h['step'] for h in summary['history']] == [3, 6]
  assert np.isfinite(summary['final_val_loss'])
  reg = OmniPredRegressor.from_pretrained(tmp_path / 'model.pt')
  assert reg.card['steps'] == 6 and json.loads(reg.card['train_config'])['steps'] == 6
  assert reg.sample([{'x': 1.0}], 4).shape == (1, 4)


def test_time_limit_stops_and_still_saves(tmp_path):
  cfg = attrs.evolve(SMALL, steps=1000, time_limit_s=0.0)
  summary = train(cfg, tmp_path, progress=False)
  assert summary['steps'] == 1
  assert (tmp_path / 'model.pt').exists() and (tmp_path / 'last.pt').exists()


def test_torchrun_two_cpu_processes_with_gloo(tmp_path):
  """The multi-GPU path (DistributedDataParallel) run as 2 CPU ranks over gloo."""
  with socket.socket() as sock:  # torchrun's static rendezvous needs a real free port
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', '-m', 'vizier_omnipred.cli', 'pretrain', '--out', str(tmp_path),
         '--steps', '4', '--eval-every', '2', '--d-model', '32', '--heads', '2',
         '--encoder-layers', '1', '--decoder-layers', '1', '--studies-per-batch', '2',
         '--trials-per-study', '8', '--threads', '1', '--quiet']
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / 'summary.json').read_text())
  assert summary['world_size'] == 2 and summary['steps'] == 4
  assert summary['examples_per_step'] == 2 * 2 * 8
  OmniPredRegressor.from_pretrained(tmp_path / 'model.pt')
