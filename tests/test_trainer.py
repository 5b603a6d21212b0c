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
from vizier_omnipred.pretraining.corpus import IN_CONTEXT_CORPUS
from vizier_omnipred.pretraining.trainer import TrainConfig, make_batch, train
from tests.conftest import TINY, quadratic_2d

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = TrainConfig(model=TINY, corpus=attrs.evolve(IN_CONTEXT_CORPUS, max_dim=3), steps=6,
                    trials_per_batch=48, queries_per_study=4, max_context=12, eval_every=3,
                    checkpoint_every=3, eval_studies=2, eval_context_sizes=(2, 8),
                    eval_conditional_sizes=(4,), eval_multi_output_sizes=(4,), warmup_steps=2, prefetch=0)


def test_training_writes_a_loadable_checkpoint_and_resumes(tmp_path):
  first = train(attrs.evolve(SMALL, steps=3), tmp_path, progress=False)
  assert first['steps'] == 3
  summary = train(SMALL, tmp_path, progress=False)  # resumes from last.pt at step 3
  assert summary['steps'] == 6
  assert [h['step'] for h in summary['history']] == [3, 6]
  assert np.isfinite(summary['final_val_loss'])
  assert set(summary['history'][-1]['by_context']) == {2, 8}  # held-out loss per context size
  reg = OmniPredRegressor.from_pretrained(tmp_path / 'model.pt')
  assert reg.card['steps'] == 6 and json.loads(reg.card['train_config'])['steps'] == 6
  rows, y = quadratic_2d(5, 0)
  reg.condition(list(zip(rows[:3], y[:3])))
  assert reg.sample(rows[3:], 4).shape == (2, 4)


def test_a_batch_is_a_deterministic_set_of_episodes_of_one_context_size():
  inputs, ids = make_batch(SMALL, step=5, rank=0)
  again, ids_again = make_batch(SMALL, step=5, rank=0)
  np.testing.assert_array_equal(inputs.y, again.y)
  np.testing.assert_array_equal(ids, ids_again)
  context = inputs.is_context.sum(1)
  assert len(set(context)) == 1 and 2 <= context[0] <= 12  # one size per batch
  assert inputs.num_queries == len(ids) == 4 * len(context)
  # Context y is normalised by the context itself: its range is exactly [2, 3].
  y = np.where(inputs.is_context, inputs.y, np.nan)
  np.testing.assert_allclose(np.nanmin(y, 1), 2.0)
  np.testing.assert_allclose(np.nanmax(y, 1), 3.0)
  other, _ = make_batch(SMALL, step=5, rank=1)
  assert not np.array_equal(other.y, inputs.y)  # each rank draws its own studies


def test_compact_batches_travel_narrow_and_predict_the_same():
  import pickle
  import torch
  from vizier_omnipred.model import OmniPredModel
  inputs, ids = make_batch(SMALL, 0, rank=0)  # compact, as a worker sends it
  widen = lambda g: attrs.evolve(g, **{k: getattr(g, k).astype(np.int64)
                                       for k in ('names', 'kinds', 'numbers', 'texts')})
  wide = attrs.evolve(inputs, items=widen(inputs.items), meta=widen(inputs.meta))
  assert inputs.items.names.dtype == np.int8 and inputs.items.numbers.dtype == np.int8
  assert len(pickle.dumps(inputs)) < len(pickle.dumps(wide)) / 3
  torch.manual_seed(0)
  model = OmniPredModel(TINY).eval()
  target = torch.as_tensor(ids)
  with torch.no_grad():
    assert float(model.loss(model.to_tensors(inputs), target)) == float(
        model.loss(model.to_tensors(wide), target))


def test_prefetched_batches_equal_in_process_ones():
  from vizier_omnipred.training import Prefetcher
  import functools
  build = functools.partial(make_batch, SMALL, rank=0)
  with Prefetcher(build, depth=2, workers=2) as ahead:
    got = [ahead.get(s)[1] for s in (0, 1, 3)]
  for s, ids in zip((0, 1, 3), got):
    np.testing.assert_array_equal(ids, build(s)[1])


def test_time_limit_stops_and_still_saves(tmp_path):
  cfg = attrs.evolve(SMALL, steps=1000, time_limit_s=0.0)
  summary = train(cfg, tmp_path, progress=False)
  assert summary['steps'] == 1
  assert (tmp_path / 'model.pt').exists() and (tmp_path / 'last.pt').exists()


def test_cosine_follows_the_time_limit_when_it_runs_out_first():
  from vizier_omnipred.training import cosine_lr
  cfg = attrs.evolve(SMALL, steps=1000, warmup_steps=10, learning_rate=1.0,
                     min_learning_rate_ratio=0.1, time_limit_s=100.0)
  # Half the time gone at a tenth of the steps: the cosine is half-way (lr 0.55), not at 0.1.
  assert cosine_lr(100, cfg, elapsed_s=50.0) == pytest.approx(0.55)
  assert cosine_lr(100, cfg, elapsed_s=100.0) == pytest.approx(0.1)  # out of time: annealed
  # The steps running out first still end the cosine; warm-up is by steps alone.
  assert cosine_lr(1000, cfg, elapsed_s=1.0) == pytest.approx(0.1)
  assert cosine_lr(4, cfg, elapsed_s=99.0) == pytest.approx(0.5)
  no_limit = attrs.evolve(cfg, time_limit_s=None)
  assert cosine_lr(100, no_limit, elapsed_s=1e9) == pytest.approx(cosine_lr(100, no_limit))


def test_torchrun_two_cpu_processes_with_gloo(tmp_path):
  """The multi-GPU path (DistributedDataParallel) run as 2 CPU ranks over gloo."""
  with socket.socket() as sock:  # torchrun's static rendezvous needs a real free port
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', '-m', 'vizier_omnipred.cli', 'pretrain', '--out', str(tmp_path),
         '--steps', '4', '--eval-every', '2', '--d-model', '32', '--heads', '2',
         '--encoder-layers', '1', '--decoder-layers', '1', '--trials-per-batch', '24',
         '--queries-per-study', '4', '--max-context', '8', '--prefetch', '0', '--threads', '1',
         '--quiet']
  env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / 'summary.json').read_text())
  assert summary['world_size'] == 2 and summary['steps'] == 4
  assert summary['examples_per_step'] == 2 * 24
  OmniPredRegressor.from_pretrained(tmp_path / 'model.pt')


def test_a_snapshot_of_a_run_loads_and_its_card_shows_loss_by_context(tmp_path):
  from vizier_omnipred.pretraining import model_card
  train(attrs.evolve(SMALL, steps=3), tmp_path, progress=False)
  summary = model_card.snapshot(tmp_path)
  assert summary['steps'] == 3 and summary['train_config']['steps'] == 3
  reg = OmniPredRegressor.from_pretrained(tmp_path / 'snapshot.pt')
  assert reg.card['steps'] == 3
  card = model_card.card_text(summary, None)
  assert '| step | 2 trials | 8 trials |' in card  # held-out loss by context size
  model_card.loss_plot(summary['history'], tmp_path / 'loss.png')
  assert (tmp_path / 'loss.png').stat().st_size > 1000
  # From the command line without --ship: the card goes beside the run, the shipped one stays.
  shipped_card = model_card.checkpoints.SHIPPED.parent / 'README.md'
  before = shipped_card.read_bytes()
  assert model_card.main([str(tmp_path), '--snapshot']) == 0
  assert '| step | 2 trials | 8 trials |' in (tmp_path / 'README.md').read_text()
  assert (tmp_path / 'omnipred-loss.png').exists() and shipped_card.read_bytes() == before


def test_a_second_stage_starts_from_the_first_and_the_card_counts_both(tmp_path):
  import torch
  from vizier_omnipred.pretraining import model_card
  first = train(attrs.evolve(SMALL, steps=3), tmp_path / 'a', progress=False)
  start = torch.load(tmp_path / 'a' / 'model.pt', weights_only=True)['state_dict']
  second_cfg = attrs.evolve(SMALL, steps=2, learning_rate=0.0, min_learning_rate_ratio=0.0,
                            init_from=str(tmp_path / 'a' / 'model.pt'))
  second = train(second_cfg, tmp_path / 'b', progress=False)
  # Learning rate 0: the second run keeps the first's weights exactly (a fresh init would not).
  end = torch.load(tmp_path / 'b' / 'model.pt', weights_only=True)['state_dict']
  assert all(torch.equal(start[k], end[k]) for k in start)
  assert second['history'][-1]['conditional_by_context'].keys() == {4}
  assert second['history'][-1]['multi_output_by_context'].keys() == {4}
  both = model_card.combine(dict(first, run_dir='runs/a'), dict(second, run_dir='runs/b'))
  # The second run evaluates its start (the first's weights, on its own held-out episodes) first:
  # at lr 0 it reads the same at its start and its end, with no train loss at the start.
  assert [h['step'] for h in second['history']] == [0, 2]
  assert 'train_loss' not in second['history'][0]
  assert second['history'][0]['val_loss'] == pytest.approx(second['final_val_loss'])
  assert 'train_loss' in second['history'][1] and 'train_loss' in first['history'][0]
  assert both['steps'] == 5 and [h['step'] for h in both['history']] == [3, 3, 5]
  card = model_card.card_text(both, None)
  assert '| 3 | - (stage start) |' in card and '| 3 (stage start) | ' in card
  model_card.loss_plot(both['history'], tmp_path / 'loss.png')
  assert '2 stages: (1) 3 steps' in card and "(2) from stage 1's weights, 2 steps" in card
  assert 'pretrain --out runs/b --steps 2 --init-from runs/a/model.pt' in card
  assert 'model_card runs/b --previous runs/a --ship' in card
  assert '| conditional, 4 trials | multi-output, 4 trials |' in card
  # A third stage counts all three.
  three = model_card.combine(both, dict(second, run_dir='runs/c'))
  assert three['steps'] == 7 and len(three['stages']) == 3
  assert '--previous runs/a runs/b --ship' in model_card.card_text(three, None)
  # A stage on a GPU: the card names the card and how it ran, and its command the GPU flags.
  gpu_cfg = dict(second['train_config'], bf16=True, data_workers=14, time_limit_s=430.0,
                 trials_per_batch=2048)
  on_gpu = model_card.combine(both, dict(second, run_dir='runs/g', device='cuda:0',
                                         device_name='NVIDIA H100', train_config=gpu_cfg))
  card = model_card.card_text(on_gpu, None)
  assert ('stages 1-2: one thread of a 2-core CPU; a second process builds batches; stage 3:'
          ' NVIDIA H100, 1 process(es); 14 processes build batches') in card
  assert ('--trials-per-batch 2048 --bf16 --data-workers 14 --time-limit 430 '
          '--conditional-fraction') in card
  assert 'over 2 steps or 430 s, whichever came first' in card
  assert card.count('--threads 1') == 2  # the CPU stages only
  assert "on the last stage's held-out episodes" not in card  # every stage drew seed 0
  reseeded = model_card.combine(both, dict(second, run_dir='runs/g', train_config=dict(
      second['train_config'], seed=7)))
  assert "on the last stage's held-out episodes, seed 7" in model_card.card_text(reseeded, None)
  bad = attrs.evolve(second_cfg, model=attrs.evolve(TINY, d_model=16, d_ff=32))
  with pytest.raises(ValueError, match="differs from this run's"):
    train(bad, tmp_path / 'c', progress=False)


def test_a_deeper_run_starts_from_a_shallower_checkpoint_predicting_exactly_as_it(tmp_path):
  import torch
  from vizier_omnipred import checkpoints
  from vizier_omnipred.model import OmniPredModel
  from vizier_omnipred.pretraining import growth
  train(attrs.evolve(SMALL, steps=2), tmp_path / 'a', progress=False)
  source, _ = checkpoints.load(tmp_path / 'a' / 'model.pt')
  deep_cfg = attrs.evolve(TINY, encoder_layers=3, slot_binding=True)
  deep = OmniPredModel(deep_cfg)
  assert growth.load_grown(deep, source) == 2
  deep.eval()
  inputs, ids = make_batch(SMALL, step=9, rank=0)
  ids = torch.as_tensor(ids)
  with torch.no_grad():
    assert torch.equal(deep(deep.to_tensors(inputs), ids), source(source.to_tensors(inputs), ids))
  # Through the trainer: a run with 2 more encoder blocks and slot codes, at lr 0,
  # keeps the source's weights and its held-out loss.
  grown = train(attrs.evolve(SMALL, model=deep_cfg, steps=1, learning_rate=0.0,
                             min_learning_rate_ratio=0.0, init_from=str(tmp_path / 'a' / 'model.pt')),
                tmp_path / 'b', progress=False)
  again = train(attrs.evolve(SMALL, steps=1, learning_rate=0.0, min_learning_rate_ratio=0.0,
                             init_from=str(tmp_path / 'a' / 'model.pt')), tmp_path / 'c',
                progress=False)
  assert grown['final_val_loss'] == pytest.approx(again['final_val_loss'], rel=1e-5)
  # Shallower, wider or otherwise changed sizes are refused, naming both configs.
  for other in (attrs.evolve(deep_cfg, encoder_layers=0), attrs.evolve(deep_cfg, d_ff=128)):
    with pytest.raises(ValueError, match='only encoder_layers may grow and slot_binding, prior_studies, prior_gate, current_slots turn on'):
      growth.load_grown(OmniPredModel(other), source)


def test_the_shipped_summary_matches_the_shipped_card_and_a_stage_on_top_counts_all(tmp_path):
  from vizier_omnipred import checkpoints
  from vizier_omnipred.pretraining import model_card
  shipped = model_card.previous_summary(model_card.SHIPPED_SUMMARY)
  _, card = checkpoints.load()
  assert shipped['steps'] == card['steps'] == sum(s['steps'] for s in shipped['stages'])
  assert shipped['final_val_loss'] == pytest.approx(card['final_val_loss'])
  assert shipped['wall_time_s'] == pytest.approx(card['wall_time_s'])
  # A run continued from the shipped weights: the card counts the shipped stages and it.
  later = dict(train(attrs.evolve(SMALL, steps=2), tmp_path / 'd', progress=False),
               run_dir='runs/d')
  both = model_card.combine(shipped, later)
  assert both['steps'] == card['steps'] + 2 and len(both['stages']) == len(shipped['stages']) + 1
  text = model_card.card_text(both, None)
  assert f"{len(both['stages'])} stages: (1)" in text
  # The new stage's command carries the sizes that differ from pretrain's defaults.
  last = shipped['stages'][-1]['run_dir']
  assert (f'pretrain --out runs/d --steps 2 --init-from {last}/model.pt' in text
          and '--d-model 32 --heads 2 --encoder-layers 1 --decoder-layers 1`' in text)
  assert both['history'][-1]['step'] == card['steps'] + 2
  with pytest.raises(FileNotFoundError, match='neither a run directory nor a summary'):
    model_card.previous_summary(tmp_path / 'nowhere')


def test_bf16_autocast_trains_and_saves_float32_weights(tmp_path):
  """The GPU recipe's --bf16, run here on CPU autocast: a dtype mix-up fails before a GPU
  session spends its minutes on it."""
  import torch
  summary = train(attrs.evolve(SMALL, steps=2, bf16=True), tmp_path, progress=False)
  assert np.isfinite(summary['final_val_loss'])
  weights = torch.load(tmp_path / 'model.pt', weights_only=True)['state_dict']
  assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}


def test_random_slot_tables_bind_ranks_to_a_random_subset_of_the_first_k_slots():
  from vizier_omnipred.model import MAX_SLOTS
  from vizier_omnipred.pretraining.trainer import random_slot_tables
  tables = random_slot_tables(50, 6, np.random.default_rng(0)).numpy()
  for row in tables:
    assert sorted(row[:6]) == list(range(6))  # the first 6 ranks: a permutation of slots 0-5
    np.testing.assert_array_equal(row[6:], np.arange(6, MAX_SLOTS))  # the rest their own
  assert len({tuple(row[:6]) for row in tables}) > 40  # drawn per study
  with pytest.raises(ValueError, match=r'random_slots must be in 1\.\.32, got 0'):
    random_slot_tables(2, 0, np.random.default_rng(0))


def test_random_slots_reach_the_model_in_training_and_only_there(tmp_path):
  """With slot binding, the same run with random slots trains other weights than with name
  ranks (the slots differ), and records the setting; its held-out loss reads ranks."""
  cfg = attrs.evolve(SMALL, model=attrs.evolve(TINY, slot_binding=True), steps=2, eval_every=2,
                     checkpoint_every=2)
  ranks = train(cfg, tmp_path / 'ranks', progress=False)
  shuffled = train(attrs.evolve(cfg, random_slots=8), tmp_path / 'random', progress=False)
  assert ranks['history'][0]['by_context'] != shuffled['history'][0]['by_context']
  a = OmniPredRegressor.from_pretrained(tmp_path / 'ranks' / 'model.pt').base
  b = OmniPredRegressor.from_pretrained(tmp_path / 'random' / 'model.pt').base
  assert not np.allclose(a.slot_codes.detach().numpy(), b.slot_codes.detach().numpy())
  assert json.loads(OmniPredRegressor.from_pretrained(
      tmp_path / 'random' / 'model.pt').card['train_config'])['random_slots'] == 8
