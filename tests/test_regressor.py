import numpy as np
import pytest
import torch
from scipy import stats
from vizier import pyvizier as vz

from vizier_omnipred import checkpoints
from vizier_omnipred.regressor import FineTuneConfig, OmniPredRegressor, YScaler
from tests.conftest import TINY, quadratic_2d

FAST_FULL = FineTuneConfig(method='full', learning_rate=3e-3, max_steps=150, min_validation=100)
FAST_LORA = FineTuneConfig(method='lora', max_steps=40, min_validation=100)


def _fit(y_scale=1.0, y_shift=0.0, n=24, config=FAST_FULL, seed=0):
  rows, y = quadratic_2d(n, seed)
  reg = OmniPredRegressor.from_scratch(TINY, seed=seed)
  report = reg.fine_tune(list(zip(rows, y * y_scale + y_shift)), config=config)
  return reg, rows, y * y_scale + y_shift, report


def test_full_fine_tuning_fits_the_training_points():
  reg, rows, y, report = _fit()
  assert report.steps == 150 and report.stopped_by == 'max_steps'
  pred = reg.predict(rows, num_samples=32)
  assert stats.spearmanr(pred.median, y).statistic > 0.7


def test_lora_trains_the_adapter_and_leaves_the_base_untouched():
  rows, y = quadratic_2d(20, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  before = {k: v.clone() for k, v in reg.base.state_dict().items()}
  base_samples = reg.sample(rows[:4], 16)
  reg.fine_tune(list(zip(rows, y)), config=FAST_LORA)
  for k, v in reg.base.state_dict().items():
    torch.testing.assert_close(v, before[k])
  assert any('lora_' in n for n, _ in reg._tuned.named_parameters())
  assert not np.allclose(reg.sample(rows[:4], 16), base_samples)


@pytest.mark.parametrize('scale, shift', [(1e300, 0.0), (1e-300, 0.0), (-5.0, -1e6), (1.0, 1e12)])
def test_any_y_scale_gives_finite_predictions_in_units(scale, shift):
  reg, rows, y, _ = _fit(y_scale=scale, y_shift=shift)
  samples = reg.sample(rows, 16)
  assert np.all(np.isfinite(samples))
  lo, hi = min(y), max(y)
  span = hi - lo if np.isfinite(hi - lo) else np.inf
  med = np.median(samples, axis=1)
  assert np.all(med >= lo - span) and np.all(med <= hi + span)


def test_constant_y_predicts_the_constant():
  rows, _ = quadratic_2d(20, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  reg.fine_tune([(r, 7.25) for r in rows], config=FAST_FULL)
  np.testing.assert_allclose(reg.predict(rows[:5]).median, 7.25, rtol=0.05)


def test_y_scaler_maps_training_range_to_two_three_and_back():
  y = np.array([-1e308, 0.0, 1e308])  # the span overflows float64
  s = YScaler.fit(y)
  z = s.transform(y)
  np.testing.assert_allclose(z, [2.0, 2.5, 3.0])
  np.testing.assert_allclose(s.inverse(z), y, rtol=1e-12, atol=1e295)
  assert np.all(np.isfinite(s.inverse(np.array([-1e3, 1e3]))))  # far extrapolation clips


def test_seeded_fine_tuning_and_sampling_are_reproducible():
  a = _fit(config=FAST_LORA)[0].sample(quadratic_2d(5, 9)[0], 8, seed=3)
  b = _fit(config=FAST_LORA)[0].sample(quadratic_2d(5, 9)[0], 8, seed=3)
  np.testing.assert_array_equal(a, b)


def test_adapter_save_and_load_restore_the_predictions(tmp_path):
  reg, rows, _, _ = _fit(config=FAST_LORA)
  reg.save_adapter(tmp_path / 'adapter.pt')
  other = OmniPredRegressor(reg.base)
  other.load_adapter(tmp_path / 'adapter.pt')
  np.testing.assert_array_equal(other.sample(rows, 8, seed=1), reg.sample(rows, 8, seed=1))


def test_save_adapter_needs_lora():
  reg = _fit()[0]
  with pytest.raises(ValueError, match='save_adapter needs a LoRA fine-tuning'):
    reg.save_adapter('/tmp/never.pt')


def test_time_budget_and_early_stopping_stop_training():
  rows, y = quadratic_2d(40, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  report = reg.fine_tune(list(zip(rows, y)), config=FineTuneConfig(time_budget_s=0.0))
  assert report.stopped_by == 'time_budget' and report.steps == 1
  report = reg.fine_tune(list(zip(rows, y)), config=FineTuneConfig(
      method='full', max_steps=5000, eval_every=2, patience=2, learning_rate=0.05, min_steps=10,
      min_validation=3))
  assert report.stopped_by == 'early_stopping' and report.num_validation == 8
  assert report.best_validation_loss is not None


def test_prediction_summaries_are_consistent():
  reg, rows, _, _ = _fit()
  p = reg.predict(rows[:6], num_samples=33, quantiles=(0.1, 0.5, 0.9))
  assert p.samples.shape == (6, 33) and p.quantiles.shape == (6, 3)
  np.testing.assert_allclose(p.quantiles[:, 1], p.median)
  assert np.all(np.diff(p.quantiles, axis=1) >= 0)


def _trial(params, value=None, infeasible=False, metric='accuracy'):
  t = vz.Trial(parameters=params)
  if infeasible:
    t.complete(vz.Measurement(), infeasibility_reason='diverged')
  elif value is not None:
    t.complete(vz.Measurement(metrics={metric: value}))
  return t


ROW = {'learning_rate': 1e-3, 'dropout': 0.1, 'num_layers': 3, 'batch_size': 32,
       'optimizer': 'adam', 'use_bias': 'True'}


def test_vizier_trials_are_accepted_with_their_problem(mixed_problem):
  trials = [_trial(dict(ROW, dropout=d), value=d * 2) for d in np.linspace(0, 0.5, 10)]
  reg = OmniPredRegressor.from_scratch(TINY)
  report = reg.fine_tune(trials, problem=mixed_problem, config=FAST_LORA)
  assert report.num_train == 10
  assert reg.sample(trials[:2], 4).shape == (2, 4)


@pytest.mark.parametrize('bad, message', [
    (_trial(ROW, infeasible=True), r'Trial 1 \(id 0\) is infeasible'),
    (_trial(ROW), 'has no final measurement'),
    (_trial(ROW, 1.0, metric='loss'), "has no metric 'accuracy'; it has \\['loss'\\]"),
])
def test_bad_trials_name_the_culprit(mixed_problem, bad, message):
  reg = OmniPredRegressor.from_scratch(TINY)
  with pytest.raises(ValueError, match=message):
    reg.fine_tune([_trial(ROW, 1.0), bad, _trial(ROW, 2.0)], problem=mixed_problem)


@pytest.mark.parametrize('bad_y, message', [
    (float('nan'), 'Example 2: y is nan; y must be finite'),
    (float('inf'), 'Example 2: y is inf'),
    ('high', "Example 2: y must be a number, got 'high'"),
])
def test_bad_y_names_the_example(bad_y, message):
  rows, y = quadratic_2d(4, 0)
  examples = list(zip(rows, y))
  examples[2] = (rows[2], bad_y)
  with pytest.raises(ValueError, match=message):
    OmniPredRegressor.from_scratch(TINY).fine_tune(examples)


def test_too_few_or_malformed_examples():
  reg = OmniPredRegressor.from_scratch(TINY)
  with pytest.raises(ValueError, match='at least 2 examples'):
    reg.fine_tune([({'x': 1.0}, 1.0)])
  with pytest.raises(TypeError, match='Example 0: expected a vz.Trial or a'):
    reg.fine_tune([{'x': 1.0}, {'x': 2.0}])


def test_checkpoint_round_trip(tmp_path):
  reg = OmniPredRegressor.from_scratch(TINY, seed=4)
  checkpoints.save(tmp_path / 'm.pt', reg.base, card={'name': 'tiny'})
  loaded = OmniPredRegressor.from_pretrained(tmp_path / 'm.pt')
  assert loaded.card == {'name': 'tiny'}
  rows = quadratic_2d(3, 0)[0]
  np.testing.assert_array_equal(loaded.sample(rows, 4), reg.sample(rows, 4))


def test_missing_checkpoint_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    OmniPredRegressor.from_pretrained(tmp_path / 'nope.pt')
  (tmp_path / 'junk.pt').write_bytes(b'')
  torch.save({'format': 'other'}, tmp_path / 'junk.pt')
  with pytest.raises(ValueError, match='is not a vizier-omnipred/1 checkpoint'):
    OmniPredRegressor.from_pretrained(tmp_path / 'junk.pt')
