"""Deepening a trained surrogate without changing what it predicts (function-preserving growth).

`pretrain --init-from CHECKPOINT --encoder-layers N` (or `--item-layers N`) with N above the
checkpoint's starts from its weights and appends blocks whose two output projections (attention
`o_proj`, MLP `fc_out`) are zero: each new block adds nothing to the residual stream, so the
grown model's predictions are the checkpoint's until training moves the new weights (the new
blocks' other weights are freshly initialised, so their gradients are not zero). This is how a
CPU-trained model can be given more depth without paying for its first 44000 steps again.

Only the block counts of `GROWABLE` may grow; every other size must match.
"""

from __future__ import annotations

import attrs
import torch

from vizier_omnipred.model import ModelConfig, OmniPredModel


# ModelConfig fields (block counts) and the model's block lists they size.
GROWABLE = {'encoder_layers': 'encoder', 'item_layers': 'item_blocks'}


def can_grow(source: ModelConfig, target: ModelConfig) -> bool:
  """True when `target` is `source` with at least as many blocks of each `GROWABLE` kind."""
  counts = {f: getattr(target, f) for f in GROWABLE}
  return (all(counts[f] >= getattr(source, f) for f in GROWABLE)
          and attrs.evolve(source, **counts) == target)


def load_grown(model: OmniPredModel, source: OmniPredModel) -> int:
  """Copies `source`'s weights into `model` (same sizes but more blocks) and silences the
  extra blocks; -> the number of blocks added. Raises ValueError naming both configs if
  `model` is not a grown `source`."""
  src_cfg, cfg = source.model_config, model.model_config
  if not can_grow(src_cfg, cfg):
    raise ValueError(f'Cannot grow {src_cfg} into {cfg}: only {", ".join(GROWABLE)} may'
                     ' differ, and only upward.')
  missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
  new_blocks = [block for field, name in GROWABLE.items()
                for block in getattr(model, name)[getattr(src_cfg, field):]]
  new_prefixes = tuple(f'{name}.{i}.' for field, name in GROWABLE.items()
                       for i in range(getattr(src_cfg, field), getattr(cfg, field)))
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
