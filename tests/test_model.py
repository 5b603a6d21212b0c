import numpy as np
import pytest
import torch

from vizier_omnipred.decoding import CachedDecoder, sample_ids
from vizier_omnipred.model import LORA_TARGETS, ModelConfig, OmniPredModel
from vizier_omnipred.serialization import Featurizer


def _batch(model, n=5, seed=0):
  rng = np.random.default_rng(seed)
  rows = [{'a': float(v), 'b': str(c)} for v, c in zip(rng.normal(size=n), rng.choice(['x', 'y'], n))]
  return model.to_tensors(Featurizer().featurize(rows))


def test_config_round_trips_through_a_dict(tiny_config):
  assert ModelConfig.from_dict(tiny_config.to_dict()) == tiny_config


def test_bad_config_names_the_sizes():
  with pytest.raises(ValueError, match=r'd_model \(30\) must be divisible by num_heads \(4\)'):
    ModelConfig(d_model=30, num_heads=4)


def test_teacher_forced_loss_is_finite_and_trainable(tiny_config):
  torch.manual_seed(0)
  model = OmniPredModel(tiny_config)
  inputs = _batch(model, 8)
  y = torch.as_tensor(tiny_config.y_codec.encode_many(np.linspace(2, 3, 8)))
  opt = torch.optim.Adam(model.parameters(), 1e-2)
  first = None
  for _ in range(30):
    loss = model.loss(inputs, y)
    first = first if first is not None else loss.item()
    opt.zero_grad()
    loss.backward()
    opt.step()
  assert float(loss) < 0.5 * first


def test_cached_greedy_decoding_equals_teacher_forced_argmax(tiny_config):
  torch.manual_seed(1)
  model = OmniPredModel(tiny_config).eval()
  inputs = _batch(model, 6)
  fast = sample_ids(model, inputs, 3, temperature=0.0)[:, 0]  # [B, T]
  slow = torch.zeros_like(fast)
  with torch.no_grad():
    for t in range(slow.shape[1]):
      logits = model(inputs, slow)
      slow[:, t] = logits[:, t].argmax(-1) - model.slot_offsets[t]
  torch.testing.assert_close(fast, slow)


def test_samples_are_legal_and_temperature_controls_spread(tiny_config):
  torch.manual_seed(2)
  model = OmniPredModel(tiny_config).eval()
  inputs = _batch(model, 4)
  codec = tiny_config.y_codec
  spreads = {}
  for temp in (0.01, 1.0):
    gen = torch.Generator().manual_seed(0)
    ids = sample_ids(model, inputs, 64, temperature=temp, generator=gen).numpy()
    for slot, size in enumerate(codec.slot_sizes):
      assert ids[..., slot].min() >= 0 and ids[..., slot].max() < size
    # Distinct samples per row: an untrained model is near uniform at 1.0.
    spreads[temp] = np.mean([len({tuple(r) for r in row}) for row in ids])
  assert spreads[0.01] < 0.5 * spreads[1.0]


def _sample_per_sample(model, inputs, num_samples, temperature, generator):
  """Reference sampler: every sample decoded on its own by teacher forcing its prefix."""
  b = inputs['mask'].shape[0]
  expanded = {k: v.repeat_interleave(num_samples, dim=0) for k, v in inputs.items()}
  ids = torch.zeros((b * num_samples, len(model.model_config.y_codec.slot_sizes)),
                    dtype=torch.long)
  with torch.no_grad():
    for t, size in enumerate(model.model_config.y_codec.slot_sizes):
      lo = int(model.slot_offsets[t])
      logits = model(expanded, ids)[:, t, lo:lo + size].float()
      probs = torch.softmax(logits / temperature, dim=-1)
      ids[:, t] = torch.multinomial(probs, 1, generator=generator)[:, 0]
  return ids.view(b, num_samples, -1)


@pytest.mark.parametrize('temperature', [0.3, 1.0])
def test_prefix_shared_sampling_draws_what_per_sample_decoding_draws(tiny_config, temperature):
  torch.manual_seed(3)
  model = OmniPredModel(tiny_config).eval()
  inputs = _batch(model, 5)
  rows = []
  hook = model.decoder[0].self_attn.q_proj.register_forward_hook(
      lambda mod, args, out: rows.append(args[0].shape[0]))
  fast = sample_ids(model, inputs, 16, temperature=temperature,
                    generator=torch.Generator().manual_seed(7))
  hook.remove()
  slow = _sample_per_sample(model, inputs, 16, temperature, torch.Generator().manual_seed(7))
  torch.testing.assert_close(fast, slow)
  # Position 0 runs once per candidate; later positions once per distinct prefix.
  assert rows[0] == 5
  assert sum(rows) < 5 * 16 * len(rows)


def test_rows_on_shuffled_memories_attend_to_their_own_memory_only(tiny_config):
  """Rows in any order, several per memory, ragged masks: each row's states equal those of
  a decoder that holds only that row's memory."""
  torch.manual_seed(5)
  model = OmniPredModel(tiny_config).eval()
  d = tiny_config.d_model
  memory = torch.randn(3, 4, d)
  mask = torch.tensor([[True, True, False, False], [True, True, True, True],
                       [True, False, False, False]])[:, None, None, :]
  memory_index = torch.tensor([2, 0, 2, 1, 2, 0])
  steps = [torch.randn(6, d) for _ in range(3)]
  with torch.no_grad():
    shared = CachedDecoder(model.decoder, memory, mask)
    got = [shared.step(y, t, memory_index) for t, y in enumerate(steps)]
    for r, mi in enumerate(memory_index.tolist()):
      alone = CachedDecoder(model.decoder, memory[mi:mi + 1], mask[mi:mi + 1])
      rows = torch.zeros(1, dtype=torch.long)
      for t, y in enumerate(steps):
        torch.testing.assert_close(got[t][r], alone.step(y[r:r + 1], t, rows)[0])


def test_pooled_characters_equal_the_mean_of_char_plus_position_embeddings(tiny_config):
  torch.manual_seed(4)
  model = OmniPredModel(tiny_config)
  ids = _batch(model, 4)['names']
  items = model.items
  present = (ids > 0).unsqueeze(-1).float()
  expected = ((items.chars(ids) + items.name_pos.weight[: ids.shape[-1]]) * present).sum(-2)
  expected = expected / present.sum(-2).clamp_min(1.0)
  torch.testing.assert_close(items._pool_chars(ids, items.name_pos), expected)


def test_sampling_is_reproducible_with_a_generator(tiny_config):
  model = OmniPredModel(tiny_config).eval()
  inputs = _batch(model, 3)
  a = sample_ids(model, inputs, 8, generator=torch.Generator().manual_seed(5))
  b = sample_ids(model, inputs, 8, generator=torch.Generator().manual_seed(5))
  torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kwargs, message', [
    ({'num_samples': 0}, 'num_samples must be >= 1'),
    ({'num_samples': 2, 'temperature': -1.0}, 'temperature must be >= 0'),
])
def test_bad_sampling_arguments(tiny_config, kwargs, message):
  model = OmniPredModel(tiny_config).eval()
  with pytest.raises(ValueError, match=message):
    sample_ids(model, _batch(model, 2), **kwargs)


def test_lora_targets_are_named_linear_layers(tiny_config):
  model = OmniPredModel(tiny_config)
  linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
  for target in LORA_TARGETS:
    assert any(n == target or n.endswith('.' + target) for n in linear), target
