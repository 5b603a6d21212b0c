"""The prior-study gate: what it reads, that it starts silent, and what a closed gate does."""

import attrs
import numpy as np
import pytest
import torch

from vizier_omnipred import OmniPredRegressor, checkpoints
from vizier_omnipred.model import ModelConfig, OmniPredModel
from vizier_omnipred.prior_gate import MIN_CURRENT, agreement_features
from vizier_omnipred.pretraining import growth, trainer
from vizier_omnipred.pretraining.corpus import CorpusConfig
from vizier_omnipred.pretraining.family_prior import FamilyConfig, StudyFamily
from tests.conftest import TINY

PRIOR_TINY = attrs.evolve(TINY, prior_studies=True, slot_binding=True)
GATED_TINY = attrs.evolve(PRIOR_TINY, prior_gate=True)
QUERIES = [{'x': 0.1, 'opt': 'adam'}, {'x': 0.5, 'opt': 'adam'}, {'x': -0.7, 'opt': 'sgd'}]
# Features: correlations at the two bandwidths, enough current trials, overlap, two sizes.
R_NEAR, R_FAR, ENOUGH, OVERLAP = 0, 1, 2, 3


def _randomise(model: OmniPredModel, seed: int = 1) -> OmniPredModel:
  """Prior-study codes and gate not zero (as after training)."""
  with torch.no_grad():
    torch.manual_seed(seed)
    for p in (model.study_code[2].weight, model.study_code[2].bias, model.prior_role,
              model.prior_gate.net[2].weight, model.prior_gate.net[2].bias):
      p.normal_(0, 0.5)
  return model


def _studies(seed=0):
  rng = np.random.default_rng(seed)
  current = [({'x': float(a), 'opt': str(o)}, float(a ** 2 + (o == 'sgd')))
             for a, o in zip(rng.uniform(-1, 1, 6), rng.choice(['adam', 'sgd'], 6))]
  same = [({'x': float(a), 'opt': str(o)}, float(a ** 2 + (o == 'sgd')))
          for a, o in zip(rng.uniform(-1, 1, 12), rng.choice(['adam', 'sgd'], 12))]
  other = [({'x': float(a), 'width': int(w)}, float(np.sin(7 * a) + w / 100))
           for a, w in zip(rng.uniform(-1, 1, 10), rng.integers(8, 64, 10))]
  return current, same, other


def _family_features(relation: str, size: int, foreign: float = 0.0, seed: int = 0):
  family = StudyFamily(seed, CorpusConfig(noise_fraction=0.0, min_dim=2, max_dim=3),
                       FamilyConfig(shift_fraction=0.0, warp_fraction=0.0, noise_fraction=0.0,
                                    drop_fraction=0.0, add_fraction=0.0, range_fraction=0.0,
                                    foreign_fraction=foreign),
                       relation=relation, num_priors=1)
  problem, rows, y, priors = trainer.family_draw(family, size + 4, np.random.default_rng(seed),
                                                 prior_sizes=[60])
  inputs, _ = trainer.family_inputs(problem, rows, y, priors, size, GATED_TINY)
  model = OmniPredModel(GATED_TINY)
  return agreement_features(model.to_tensors(inputs), 2)[0].numpy()  # [K, F]


def test_the_gate_reads_how_well_a_prior_study_predicts_the_study_s_own_trials():
  related = np.mean([_family_features('related', 30, seed=s)[0] for s in range(4)], 0)
  unrelated = np.mean([_family_features('unrelated', 30, seed=s)[0] for s in range(4)], 0)
  assert related[R_NEAR] > 0.5 and related[R_FAR] > 0.5 and related[ENOUGH] == 1
  assert abs(unrelated[R_NEAR]) < related[R_NEAR] - 0.3
  assert related[OVERLAP] == 1.0
  foreign = _family_features('unrelated', 30, foreign=1.0)[0]
  assert foreign[OVERLAP] == 0.0 and foreign[R_NEAR] == foreign[R_FAR] == 0.0  # nothing shared
  assert not _family_features('related', 30)[1].any()  # the absent second study: all zero


def test_with_too_few_current_trials_the_gate_is_told_it_cannot_tell():
  features = _family_features('related', MIN_CURRENT - 1)[0]
  assert features[ENOUGH] == 0 and features[R_NEAR] == features[R_FAR] == 0


def test_switching_the_gate_on_changes_no_prediction():
  source = OmniPredModel(PRIOR_TINY)
  with torch.no_grad():
    torch.manual_seed(2)
    for p in (source.study_code[2].weight, source.prior_role):
      p.normal_(0, 0.5)
  grown = OmniPredModel(GATED_TINY)
  growth.load_grown(grown, source)
  current, same, other = _studies()
  out = []
  for model in (source, grown):
    reg = OmniPredRegressor(model, relevance=None)
    reg.condition(current, prior_studies=[same, other])
    out.append(reg.quantiles(QUERIES, [0.2, 0.8]))
  np.testing.assert_allclose(out[1], out[0], rtol=1e-6)


def test_without_prior_studies_the_gate_and_current_slots_change_no_prediction(tmp_path):
  """What lets a run without prior studies made with the weights before the gate count for the
  weights with it (`checkpoints.weights_digest(with_priors=False)`): the same predictions."""
  gated = _randomise(OmniPredModel(attrs.evolve(GATED_TINY, current_slots=True)))
  plain = OmniPredModel(PRIOR_TINY)
  plain.load_state_dict({k: v for k, v in gated.state_dict().items()
                         if not k.startswith('prior_gate.')})
  current, _, _ = _studies()
  out = []
  for model in (gated, plain):
    reg = OmniPredRegressor(model, relevance=None)
    reg.condition(current)
    out.append(reg.quantiles(QUERIES, [0.2, 0.5, 0.8]))
  np.testing.assert_array_equal(out[0], out[1])
  paths = [tmp_path / 'gated.pt', tmp_path / 'plain.pt']
  for path, model in zip(paths, (gated, plain)):
    checkpoints.save(path, model, card={'name': path.stem})
  assert (checkpoints.weights_digest(paths[0], with_priors=False)
          == checkpoints.weights_digest(paths[1], with_priors=False))
  assert checkpoints.weights_digest(paths[0]) != checkpoints.weights_digest(paths[1])


def test_gated_predictions_do_not_depend_on_the_order_of_prior_studies_or_their_trials():
  reg = OmniPredRegressor(_randomise(OmniPredModel(GATED_TINY)), relevance=None)
  current, same, other = _studies()
  reg.condition(current, prior_studies=[same, other])
  first = reg.quantiles(QUERIES, [0.1, 0.5, 0.9])
  reg.condition(current[::-1], prior_studies=[other[::-1], same[4:] + same[:4]])
  np.testing.assert_allclose(reg.quantiles(QUERIES, [0.1, 0.5, 0.9]), first, rtol=1e-5, atol=1e-6)


def test_a_closed_gate_silences_a_prior_study_s_values():
  """With the gate shut, what a prior study's trials scored cannot reach the predictions (where
  its trials lie still can: parameters are standardised over the whole context)."""
  model = _randomise(OmniPredModel(GATED_TINY))
  current, same, _ = _studies()
  flipped = [(x, -3.0 * y + 1.0) for x, y in same]

  def predict():
    out = []
    for prior in (same, flipped):
      reg = OmniPredRegressor(model, relevance=None)
      reg.condition(current, prior_studies=[prior])
      out.append(reg.quantiles(QUERIES, [0.3, 0.7]))
    return out

  opened, flipped_open = predict()
  assert not np.allclose(opened, flipped_open)
  with torch.no_grad():
    model.prior_gate.net[2].weight.zero_()
    model.prior_gate.net[2].bias.fill_(-1e4)
  shut, flipped_shut = predict()
  np.testing.assert_allclose(flipped_shut, shut, rtol=1e-6)


def test_the_gate_weighs_the_same_in_training_and_in_prediction():
  """Training attends through a dense mask, CPU prediction over the gathered shared keys."""
  model = _randomise(OmniPredModel(GATED_TINY)).eval()
  family = StudyFamily(0, CorpusConfig(), FamilyConfig(), relation='mixed', num_priors=3)
  problem, rows, y, priors = trainer.family_draw(family, 14, np.random.default_rng(0))
  inputs, ids = trainer.family_inputs(problem, rows, y, priors, 10, GATED_TINY)
  tensors, target = model.to_tensors(inputs), torch.as_tensor(ids)
  dense = model.loss(tensors, target)  # gradients on: the dense path
  with torch.no_grad():
    sparse = model.loss(tensors, target)
  assert float(sparse) == pytest.approx(float(dense.detach()), rel=1e-5)
  dense.backward()
  assert model.prior_gate.net[0].weight.grad.abs().sum() > 0  # the gate learns from the loss


def test_a_gate_needs_a_model_that_reads_prior_studies():
  with pytest.raises(ValueError, match='prior_gate needs prior_studies'):
    ModelConfig(prior_gate=True)


def test_pretrain_can_train_only_the_gate_and_says_so_on_the_card(tmp_path):
  from vizier_omnipred import checkpoints, cli  # pylint: disable=g-import-not-at-top
  from vizier_omnipred.pretraining import model_card  # pylint: disable=g-import-not-at-top
  sizes = ['--d-model', '32', '--heads', '2', '--encoder-layers', '1', '--decoder-layers', '1']
  start = tmp_path / 'start'
  cli.main(['pretrain', '--out', str(start), '--steps', '1', '--quiet', *sizes,
            '--family-fraction', '1.0', '--trials-per-batch', '64', '--max-context', '10'])
  out = tmp_path / 'gate'
  cli.main(['pretrain', '--out', str(out), '--steps', '2', '--eval-every', '2', '--quiet', *sizes,
            '--init-from', str(start / 'model.pt'), '--prior-gate', '--train-only', 'prior_gate.',
            '--family-fraction', '1.0', '--trials-per-batch', '64', '--max-context', '10',
            '--lr', '0.01'])
  before, _ = checkpoints.load(start / 'model.pt')
  after, _ = checkpoints.load(out / 'model.pt')
  assert after.model_config.prior_gate
  old = before.state_dict()
  for name, weight in after.state_dict().items():
    if name.startswith('prior_gate.'):
      continue
    torch.testing.assert_close(weight, old[name], msg=name)
  assert after.prior_gate.net[2].weight.abs().sum() > 0  # the gate alone moved
  card = model_card.card_text(model_card.previous_summary(out), None)
  assert '--train-only prior_gate.' in card and '--prior-gate' in card
  assert model_card.main([str(out), '--kind', 'transfer']) == 0  # a look: the card beside it
  assert f'model_card {out} --kind transfer --ship' in (out / 'TRANSFER.md').read_text()
  with pytest.raises(ValueError, match=r"train_only \['nothing\.'\]"):
    cli.main(['pretrain', '--out', str(tmp_path / 'bad'), '--steps', '1', '--quiet', *sizes,
              '--prior-gate', '--train-only', 'nothing.', '--trials-per-batch', '64'])
