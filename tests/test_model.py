import attrs
import numpy as np
import pytest
import torch

from vizier_omnipred.decoding import CachedDecoder, sample_ids
from vizier_omnipred.model import LORA_TARGETS, ModelConfig, OmniPredModel, slot_permutations
from vizier_omnipred.serialization import Featurizer, ModelInputs, StudyInputs

NUM_CONTEXT = 6


def _study(n=5, seed=0, repeat=1) -> StudyInputs:
  """One study: NUM_CONTEXT context trials with y in [2, 3], then n queries (each `repeat`
  times in a row)."""
  rng = np.random.default_rng(seed)
  total = NUM_CONTEXT + n
  rows = [{'a': float(v), 'b': str(c)}
          for v, c in zip(rng.normal(size=total), rng.choice(['x', 'y'], total))]
  rows = rows[:NUM_CONTEXT] + [r for r in rows[NUM_CONTEXT:] for _ in range(repeat)]
  fz = Featurizer()
  return StudyInputs.build(fz.featurize(rows), fz.metadata(),
                           rng.uniform(2, 3, NUM_CONTEXT), NUM_CONTEXT)


def _batch(model, n=5, seed=0, repeat=1):
  return model.to_tensors(_study(n, seed, repeat))


def _reorder(inputs: StudyInputs, trials=None, items=None) -> StudyInputs:
  """The same study with its trials (axis 1) and/or parameter items (axis 2) reordered."""
  t = slice(None) if trials is None else trials
  p = slice(None) if items is None else items
  fields = {k: v[:, t][:, :, p] for k, v in attrs.asdict(inputs.items, recurse=False).items()}
  return StudyInputs(items=ModelInputs(**fields), features=inputs.features[:, t][:, :, p],
                     meta=inputs.meta, is_context=inputs.is_context[:, t],
                     present=inputs.present[:, t], y=inputs.y[:, t])


def _logits(model, inputs: StudyInputs, y_ids) -> torch.Tensor:
  with torch.no_grad():
    out = model(model.to_tensors(inputs), torch.as_tensor(y_ids))
  return out.masked_fill(torch.isinf(out), 0.0)


@pytest.mark.parametrize('slot_binding', [False, True])
def test_no_order_over_trials_or_parameters_and_queries_are_independent(tiny_config, slot_binding):
  """Permuting the context trials, permuting the parameters, or dropping other queries from
  the batch leaves every query's logits unchanged (with and without slot codes)."""
  torch.manual_seed(6)
  tiny_config = attrs.evolve(tiny_config, slot_binding=slot_binding)
  model = OmniPredModel(tiny_config).eval()
  inputs = _study(5, seed=1)
  y_ids = tiny_config.y_codec.encode_many(np.linspace(2, 3, 5))
  base = _logits(model, inputs, y_ids)
  context_perm = np.r_[np.random.default_rng(0).permutation(NUM_CONTEXT), NUM_CONTEXT:11]
  torch.testing.assert_close(_logits(model, _reorder(inputs, trials=context_perm), y_ids), base)
  torch.testing.assert_close(_logits(model, _reorder(inputs, items=[1, 0]), y_ids), base)
  # Queries 1 and 3 alone, in reverse order: the same logits as in the full batch.
  alone = _reorder(inputs, trials=np.r_[0:NUM_CONTEXT, NUM_CONTEXT + 3, NUM_CONTEXT + 1])
  torch.testing.assert_close(_logits(model, alone, y_ids[[3, 1]]), base[[3, 1]])
  # ...while the context does matter: other y, other predictions.
  other = attrs.evolve(inputs, y=np.where(inputs.is_context, 5.0 - inputs.y, 0.0))
  assert not torch.allclose(_logits(model, other, y_ids), base)


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
  assert loss.item() < 0.5 * first


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


def _sample_per_sample(model, n, num_samples, temperature, generator):
  """Reference sampler: every sample decoded on its own by teacher forcing its prefix (each
  query repeated num_samples times: queries are independent, so each copy is the query)."""
  b = n
  expanded = _batch(model, n, repeat=num_samples)
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
  slow = _sample_per_sample(model, 5, 16, temperature, torch.Generator().manual_seed(7))
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
    shared = CachedDecoder(model.decoder, memory, mask, len(steps))
    got = [shared.step(y, t, memory_index) for t, y in enumerate(steps)]
    for r, mi in enumerate(memory_index.tolist()):
      alone = CachedDecoder(model.decoder, memory[mi:mi + 1], mask[mi:mi + 1], len(steps))
      rows = torch.zeros(1, dtype=torch.long)
      for t, y in enumerate(steps):
        torch.testing.assert_close(got[t][r], alone.step(y[r:r + 1], t, rows)[0])


def test_pooled_characters_equal_the_mean_of_char_plus_position_embeddings(tiny_config):
  torch.manual_seed(4)
  model = OmniPredModel(tiny_config)
  ids = _batch(model, 4)['names'][0]
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


def test_slot_binding_ranks_names_and_padding_or_other_studies_change_nothing(tiny_config):
  """Slots are the names' ranks (the same in every trial of a study); stacked beside a study
  with more parameters, a study's items are padded and its logits stay those it has alone."""
  torch.manual_seed(2)
  cfg = attrs.evolve(tiny_config, slot_binding=True)
  model = OmniPredModel(cfg).eval()
  torch.nn.init.normal_(model.bind_proj.weight)  # starts at zero: make the codes count
  one = _study(5, seed=1)
  rng = np.random.default_rng(3)
  rows = [{'d': float(rng.normal()), 'b': 'x', 'c': float(rng.normal()), 'a': float(rng.normal())}
          for _ in range(NUM_CONTEXT + 2)]
  fz = Featurizer()
  wide = StudyInputs.build(fz.featurize(rows), fz.metadata(), rng.uniform(2, 3, NUM_CONTEXT),
                           NUM_CONTEXT)
  slots = model.slots(model.to_tensors(_reorder(wide, items=[3, 1, 0, 2])))
  names = [fz.parameter_names[i] for i in [3, 1, 0, 2]]
  assert slots[0, 0].tolist() == [sorted(names).index(n) for n in names]
  assert (slots == slots[:, :1]).all()
  y_ids = cfg.y_codec.encode_many(np.linspace(2, 3, 7))
  both = _logits(model, StudyInputs.stack([one, wide]), y_ids)
  torch.testing.assert_close(both[:5], _logits(model, one, y_ids[:5]))
  assert one.items.names.shape[2] < StudyInputs.stack([one, wide]).items.names.shape[2]  # padded
  # The codes do reach the prediction.
  with torch.no_grad():
    model.bind_proj.weight.zero_()
  assert not torch.allclose(_logits(model, one, y_ids[:5]), both[:5])


def test_views_average_the_query_states_of_each_slot_order(tiny_config):
  """encode with `slot_views` is the mean over views of encoding with each view's slot table;
  the identity view alone is the plain encoding; and the orders do differ."""
  torch.manual_seed(4)
  model = OmniPredModel(attrs.evolve(tiny_config, slot_binding=True)).eval()
  torch.nn.init.normal_(model.bind_proj.weight)  # starts at zero: make the codes count
  rng = np.random.default_rng(5)
  rows = [{n: float(rng.normal()) for n in 'abcd'} for _ in range(NUM_CONTEXT + 3)]
  fz = Featurizer()
  inputs = model.to_tensors(StudyInputs.build(fz.featurize(rows), fz.metadata(),
                                              rng.uniform(2, 3, NUM_CONTEXT), NUM_CONTEXT))
  table = slot_permutations(3, 4, seed=0)
  with torch.no_grad():
    plain, _ = model.encode(inputs)
    each = [model.encode(dict(inputs, slot_permutation=table[v:v + 1]))[0] for v in range(3)]
    mixed, mask = model.encode(dict(inputs, slot_views=table))
    identity, _ = model.encode(dict(inputs, slot_views=table[:1]))
  torch.testing.assert_close(mixed, torch.stack(each).mean(0))
  torch.testing.assert_close(identity, plain)
  torch.testing.assert_close(each[0], plain)
  assert (each[1] - each[0]).abs().max() > 1e-3 and mixed.shape == plain.shape == (3, 1, 32)
  assert mask.shape == (3, 1, 1, 1)


def test_attention_over_shared_keys_and_self_equals_the_dense_mask():
  """The encoder's CPU path (each token sees the shared tokens and itself, over the shared keys
  alone) computes what the dense [B, 1, L, L] mask does, rows of different shared counts and
  rows with none shared included."""
  from vizier_omnipred.model import Attention, SharedKeys
  torch.manual_seed(0)
  attn = Attention(16, 4).eval()
  x = torch.randn(3, 9, 16)
  shared = torch.zeros(3, 9, dtype=torch.bool)
  shared[0, [0, 2, 5]] = True  # scattered
  shared[1, :7] = True  # most of the row
  # row 2: nothing shared, every token sees itself alone
  keys = SharedKeys.of(shared)
  assert keys.index.shape == (3, 7) and keys.valid.sum(1).tolist() == [3, 7, 0]
  with torch.no_grad():
    fast, dense = attn(x, x, keys), attn(x, x, SharedKeys.dense(shared))
  torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-6)
  # Row 2's outputs are each token's own value, projected: no other token reached it.
  with torch.no_grad():
    own = attn.o_proj(attn.v_proj(x[2]))
  torch.testing.assert_close(fast[2], own, rtol=1e-5, atol=1e-6)


def test_cached_decoder_rejects_steps_out_of_order_or_beyond_its_positions(tiny_config):
  model = OmniPredModel(tiny_config).eval()
  memory = torch.randn(2, 1, tiny_config.d_model)
  mask = torch.ones(2, 1, 1, 1, dtype=torch.bool)
  rows = torch.arange(2)
  y = torch.randn(2, tiny_config.d_model)
  with torch.no_grad():
    decoder = CachedDecoder(model.decoder, memory, mask, 2)
    with pytest.raises(ValueError, match=r'step\(1\) out of order'):
      decoder.step(y, 1, rows)
    decoder.step(y, 0, rows)
    decoder.step(y, 1, rows)
    with pytest.raises(ValueError, match=r'step\(2\) beyond the 2 positions'):
      decoder.step(y, 2, rows)
