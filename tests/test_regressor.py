import attrs
import numpy as np
import pytest
import torch
from scipy import stats
from vizier import pyvizier as vz

from vizier_omnipred import checkpoints
from vizier_omnipred.model import MAX_SLOTS, slot_permutations
from vizier_omnipred.regressor import FineTuneConfig, OmniPredRegressor, YScaler
from tests.conftest import TINY, quadratic_2d

FAST_FULL = FineTuneConfig(method='full', learning_rate=3e-3, max_steps=150)
FAST_LORA = FineTuneConfig(method='lora', max_steps=20)


def _fit(y_scale=1.0, y_shift=0.0, n=24, config=FAST_FULL, seed=0):
  rows, y = quadratic_2d(n, seed)
  reg = OmniPredRegressor.from_scratch(TINY, seed=seed)
  report = reg.fine_tune(list(zip(rows, y * y_scale + y_shift)), config=config)
  return reg, rows, y * y_scale + y_shift, report


def test_test_time_training_learns_the_study_in_context():
  """From scratch, full training on the study's own context/query splits: the model then
  predicts held-out points of the same function from the context, in scale and in rank. (60
  held-out points. The untrained model's exact median can rank by chance, its random
  features being smooth in x: Spearman 0.57 at init seed 0, 0.36 at 1; so the contrast is
  the error, which at init is off the y scale.)"""
  rows, y = quadratic_2d(100, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  reg.condition(list(zip(rows[:40], y[:40])))

  def error_and_rank():
    median = reg.predict(rows[40:], num_samples=4).median
    return (float(np.mean(np.abs(median - y[40:])) / np.ptp(y)),
            stats.spearmanr(median, y[40:]).statistic)

  untrained, _ = error_and_rank()
  report = reg.fine_tune(list(zip(rows[:40], y[:40])), config=FineTuneConfig(
      method='full', learning_rate=1e-3, max_steps=400))
  assert report.steps == 400 and report.stopped_by == 'max_steps' and report.num_context == 40
  trained, rank = error_and_rank()
  assert rank > 0.5 and trained < 0.5 * untrained, (untrained, trained, rank)


def test_sampling_needs_a_context():
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  with pytest.raises(ValueError, match='No context: call condition'):
    reg.sample([{'x': 1.0}], 4)
  with pytest.raises(ValueError, match='at least 2 examples'):
    reg.condition([({'x': 1.0}, 1.0)])
  with pytest.raises(ValueError, match='Test-time training needs at least 3 examples'):
    reg.fine_tune([({'x': 1.0}, 1.0), ({'x': 2.0}, 3.0)])


def test_zero_shot_fine_tune_only_conditions():
  rows, y = quadratic_2d(10, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  report = reg.fine_tune(list(zip(rows, y)), config=FineTuneConfig(max_steps=0))
  assert report.stopped_by == 'zero_shot' and report.steps == 0
  other = OmniPredRegressor.from_scratch(TINY, seed=0)
  other.condition(list(zip(rows, y)))
  np.testing.assert_array_equal(reg.sample(rows[:3], 8), other.sample(rows[:3], 8))


def test_the_context_changes_the_prediction():
  rows, y = quadratic_2d(20, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  reg.condition(list(zip(rows[:10], y[:10])))
  a = reg.sample(rows[10:], 16)
  reg.condition(list(zip(rows[:10], y[::-1][:10])))
  assert not np.allclose(a, reg.sample(rows[10:], 16))


def test_lora_trains_the_adapter_and_leaves_the_base_untouched():
  rows, y = quadratic_2d(20, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  before = {k: v.clone() for k, v in reg.base.state_dict().items()}
  reg.condition(list(zip(rows, y)))
  base_samples = reg.sample(rows[:4], 16)
  reg.fine_tune(list(zip(rows, y)), config=FAST_LORA)
  for k, v in reg.base.state_dict().items():
    torch.testing.assert_close(v, before[k])
  assert any('lora_' in n for n, _ in reg.tuning.tuned.named_parameters())
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
  np.testing.assert_allclose(reg.predict(rows[:5]).median, 7.25, rtol=0.1)


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
  other = reg.for_new_study()
  other.load_adapter(tmp_path / 'adapter.pt')
  other.condition(list(zip(rows, reg._context_y)))  # pylint: disable=protected-access
  np.testing.assert_array_equal(other.sample(rows, 8, seed=1), reg.sample(rows, 8, seed=1))


def test_save_adapter_needs_lora():
  reg = _fit()[0]
  with pytest.raises(ValueError, match='save_adapter needs a LoRA fine-tuning'):
    reg.save_adapter('/tmp/never.pt')


def test_time_budget_stops_training():
  rows, y = quadratic_2d(40, 0)
  reg = OmniPredRegressor.from_scratch(TINY, seed=0)
  report = reg.fine_tune(list(zip(rows, y)), config=FineTuneConfig(time_budget_s=0.0))
  assert report.stopped_by == 'time_budget' and report.steps == 1


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
  assert report.num_context == 10
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
  rows, y = quadratic_2d(5, 0)
  for r in (loaded, reg):
    r.condition(list(zip(rows, y)))
  np.testing.assert_array_equal(loaded.sample(rows, 4), reg.sample(rows, 4))


def test_missing_checkpoint_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    OmniPredRegressor.from_pretrained(tmp_path / 'nope.pt')
  (tmp_path / 'junk.pt').write_bytes(b'')
  torch.save({'format': 'other'}, tmp_path / 'junk.pt')
  with pytest.raises(ValueError, match='is not a vizier-omnipred/2 checkpoint'):
    OmniPredRegressor.from_pretrained(tmp_path / 'junk.pt')


def test_bounds_never_change_a_prediction():
  """OmniPred's principle: f(2) must not depend on whether the range is [1, 5] or [0, 100]."""
  def problem(lo, hi):
    p = vz.ProblemStatement()
    p.search_space.root.add_float_param('x', lo, hi)
    p.search_space.root.add_int_param('n', 1, 10 if hi < 10 else 1000)
    p.metric_information.append(vz.MetricInformation('y', goal=vz.ObjectiveMetricGoal.MINIMIZE))
    return p
  rng = np.random.default_rng(0)
  rows = [{'x': float(x), 'n': int(n)} for x, n in zip(rng.uniform(1, 5, 12), rng.integers(1, 10, 12))]
  y = [r['x'] ** 2 + r['n'] for r in rows]
  out = []
  for lo, hi in ((1.0, 5.0), (0.0, 100.0)):
    reg = OmniPredRegressor.from_scratch(TINY, seed=0)
    reg.condition(list(zip(rows[:8], y[:8])), problem=problem(lo, hi))
    out.append(reg.sample(rows[8:], 16))
  np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize('fitted', [False, True])
def test_exact_quantiles_split_the_samples_at_their_levels(fitted):
  """quantile_ids descends the token tree: the share of samples below the q-quantile is at
  most q and the share at or below it at least q (y is discrete at 4 digits). Untrained, the
  distribution spreads over both signs and many exponents (the negative branch's reversed
  order is exercised); fitted, it is narrow."""
  if fitted:
    reg, rows, _, _ = _fit()
  else:
    rows, y = quadratic_2d(12, 0)
    reg = OmniPredRegressor.from_scratch(TINY, seed=1)
    reg.condition(list(zip(rows, y - 1.0)))
  levels = (0.05, 0.3, 0.5, 0.9)
  exact = reg.quantiles(rows[:4], levels)
  samples = reg.sample(rows[:4], 4000, seed=3)
  assert not fitted or np.ptp(exact[:, 1:3]) > 0  # a real spread, not one value
  if not fitted:
    assert (samples < 0).mean() > 0.05 and (samples > 0).mean() > 0.05
  tolerance = 0.03  # ~3 binomial standard errors at 4000 samples
  for i, q in enumerate(levels):
    below = (samples < exact[:, i:i + 1]).mean(axis=1)
    at_or_below = (samples <= exact[:, i:i + 1]).mean(axis=1)
    assert np.all(below <= q + tolerance) and np.all(at_or_below >= q - tolerance), (q, below,
                                                                                     at_or_below)
  assert np.all(np.diff(exact, axis=1) >= 0)
  p = reg.predict(rows[:4], num_samples=8, quantiles=levels)
  np.testing.assert_array_equal(p.median, exact[:, 2])  # predict's median is the exact one
  with pytest.raises(ValueError, match=r'quantile levels must be .* in \(0, 1\)'):
    reg.quantiles(rows[:2], (0.5, 1.0))


def _views_regressor(views: int, seed: int = 0) -> tuple[OmniPredRegressor, list, np.ndarray]:
  """A tiny slot-binding model (its binding made to count) conditioned on a 4-D study."""
  torch.manual_seed(seed)
  reg = OmniPredRegressor.from_scratch(attrs.evolve(TINY, slot_binding=True), seed=seed,
                                       views=views)
  torch.nn.init.normal_(reg.base.bind_proj.weight)  # starts at zero: make the codes count
  rng = np.random.default_rng(seed)
  rows = [{f'x{i}': float(v) for i, v in enumerate(rng.uniform(-1, 1, 4))} for _ in range(16)]
  y = np.array([sum(r.values()) for r in rows])
  reg.condition(list(zip(rows[:10], y[:10])))
  return reg, rows[10:], y


def test_slot_permutations_are_distinct_orders_of_the_used_slots():
  table = slot_permutations(5, 4, seed=1).numpy()
  assert table.shape == (5, MAX_SLOTS)
  assert table[0].tolist() == list(range(MAX_SLOTS))  # view 0: the model as trained
  assert len({tuple(t) for t in table}) == 5
  for t in table:
    assert sorted(t[:4]) == [0, 1, 2, 3] and t[4:].tolist() == list(range(4, MAX_SLOTS))
  assert len(slot_permutations(8, 2)) == 2 and len(slot_permutations(8, 1)) == 1  # 2! and 1!
  with pytest.raises(ValueError, match='num_views must be >= 1'):
    slot_permutations(0, 3)


def test_views_change_the_prediction():
  reg, rows, _ = _views_regressor(views=3)
  assert reg.num_views == 3
  one = reg.for_new_study(views=1)
  one.condition(list(zip(rows, np.arange(len(rows), dtype=float))))
  reg.condition(list(zip(rows, np.arange(len(rows), dtype=float))))
  assert one.num_views == 1
  mixed, alone = reg.quantiles(rows, (0.2, 0.5, 0.8)), one.quantiles(rows, (0.2, 0.5, 0.8))
  assert np.abs(mixed - alone).max() > 1e-3
  with pytest.raises(ValueError, match='views must be >= 1'):
    OmniPredRegressor(reg.base, views=0)


def test_with_views_a_query_ignores_the_others_and_parameter_order():
  reg, rows, _ = _views_regressor(views=4)
  together = reg.quantiles(rows, (0.5,))
  alone = reg.quantiles(rows[2:3], (0.5,))
  np.testing.assert_allclose(alone, together[2:3], rtol=1e-6)
  reversed_rows = [dict(reversed(list(r.items()))) for r in rows]
  np.testing.assert_allclose(reg.quantiles(reversed_rows, (0.5,)), together, rtol=1e-6)


def test_a_fine_tuned_regressor_reads_the_one_view_it_was_trained_in():
  """LoRA steps train in the names' own slot order (view 0), and afterwards predictions come
  from that view alone (the base weights stay as they were)."""
  reg, rows, y = _views_regressor(views=4)
  base = {k: v.clone() for k, v in reg.base.state_dict().items()}
  examples = [(r, v) for r, v in zip(rows, y[10:])] * 2
  reg.fine_tune(examples, config=FAST_LORA)
  assert reg.num_views == 1
  tuned = reg.quantiles(rows, (0.5,))
  np.testing.assert_array_equal(reg.sample(rows, 6, temperature=0),
                                np.repeat(reg.sample(rows, 1, temperature=0), 6, axis=1))
  for k, v in reg.base.state_dict().items():
    torch.testing.assert_close(v, base[k])
  one = reg.for_new_study(views=1)
  one.fine_tune(examples, config=FAST_LORA)
  np.testing.assert_allclose(one.quantiles(rows, (0.5,)), tuned)  # same steps, same model
  reg.fine_tune(examples, config=FineTuneConfig(max_steps=0))  # zero-shot again: all views
  assert reg.num_views == 4
