"""Deepening a trained surrogate without changing what it predicts (function-preserving growth).

`pretrain --init-from CHECKPOINT --encoder-layers N` with N above the checkpoint's starts from
its weights and appends blocks whose two output projections (attention `o_proj`, MLP `fc_out`)
are zero: each new block adds nothing to the residual stream, so the grown model's predictions
are the checkpoint's until training moves the new weights (the new blocks' other weights are
freshly initialised, so their gradients are not zero). `--slot-binding` switches on the slot
codes the same way (their projection starts at zero), and `--prior-studies` the prior-study
codes (their last layer and vector start at zero), `--prior-gate` the prior-study gate (its
last layer starts at zero); `--current-slots` adds no weight (it ranks slots otherwise beside
prior studies, so it does change predictions with prior studies). This is how a CPU-trained
model can be given more without paying for its first 44000 steps again.

Only the block counts of `GROWABLE` may grow and `SWITCHABLE` features turn on; every other size
must match.
"""

from __future__ import annotations

import attrs
import torch

from vizier_omnipred.model import ModelConfig, OmniPredModel


# ModelConfig fields (block counts) and the model's block lists they size.
GROWABLE = {'encoder_layers': 'encoder'}
# ModelConfig flags a grown model may switch on, and the weights they add.
SWITCHABLE = {'slot_binding': ('slot_codes', 'bind_proj.'),
              'prior_studies': ('study_code.', 'prior_role'),
              'prior_gate': ('prior_gate.',), 'current_slots': ()}


def can_grow(source: ModelConfig, target: ModelConfig) -> bool:
  """True when `target` is `source` with at least as many blocks of each `GROWABLE` kind and
  perhaps some `SWITCHABLE` features on."""
  changed = {f: getattr(target, f) for f in (*GROWABLE, *SWITCHABLE)}
  return (all(getattr(target, f) >= getattr(source, f) for f in GROWABLE)
          and all(getattr(target, f) or not getattr(source, f) for f in SWITCHABLE)
          and attrs.evolve(source, **changed) == target)


def load_grown(model: OmniPredModel, source: OmniPredModel) -> int:
  """Copies `source`'s weights into `model` (same sizes but more blocks) and silences the
  extra blocks; -> the number of blocks added. Raises ValueError naming both configs if
  `model` is not a grown `source`."""
  src_cfg, cfg = source.model_config, model.model_config
  if not can_grow(src_cfg, cfg):
    raise ValueError(f'Cannot grow {src_cfg} into {cfg}: only {", ".join(GROWABLE)} may'
                     f' grow and {", ".join(SWITCHABLE)} turn on.')
  missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
  new_blocks = [block for field, name in GROWABLE.items()
                for block in getattr(model, name)[getattr(src_cfg, field):]]
  new_prefixes = tuple(f'{name}.{i}.' for field, name in GROWABLE.items()
                       for i in range(getattr(src_cfg, field), getattr(cfg, field)))
  new_prefixes += tuple(p for field, prefixes in SWITCHABLE.items()
                        if getattr(cfg, field) and not getattr(src_cfg, field) for p in prefixes)
  stray = [k for k in missing if not k.startswith(new_prefixes)]
  if stray or unexpected:
    raise ValueError(f'Growing {src_cfg} left weights unmatched: missing {stray},'
                     f' unexpected {list(unexpected)}.')
  with torch.no_grad():
    for block in new_blocks:
      for layer in (block.attn.o_proj, block.mlp.fc_out):
        layer.weight.zero_()
        layer.bias.zero_()
  return len(new_blocks)
