"""Deepening a trained surrogate without changing what it predicts (function-preserving growth).

`pretrain --init-from CHECKPOINT --encoder-layers N` with N above the checkpoint's depth starts
from its weights and appends N - depth encoder blocks whose two output projections (attention
`o_proj`, MLP `fc_out`) are zero: each new block adds nothing to the residual stream, so the
grown model's predictions are the checkpoint's until training moves the new weights (the new
blocks' other weights are freshly initialised, so their gradients are not zero). This is how a
CPU-trained model can be given more depth without paying for its first 44000 steps again.

Only the encoder depth may grow; every other size must match.
"""

from __future__ import annotations

import attrs
import torch

from vizier_omnipred.model import ModelConfig, OmniPredModel


def can_grow(source: ModelConfig, target: ModelConfig) -> bool:
  """True when `target` is `source` with at least as many encoder layers."""
  return (target.encoder_layers >= source.encoder_layers
          and attrs.evolve(source, encoder_layers=target.encoder_layers) == target)


def load_grown(model: OmniPredModel, source: OmniPredModel) -> int:
  """Copies `source`'s weights into `model` (same sizes but a deeper encoder) and silences the
  extra blocks; -> the number of blocks added. Raises ValueError naming both configs if
  `model` is not a deepened `source`."""
  src_cfg, cfg = source.model_config, model.model_config
  if not can_grow(src_cfg, cfg):
    raise ValueError(f'Cannot grow {src_cfg} into {cfg}: only encoder_layers may differ, and'
                     ' only upward.')
  missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
  depth = src_cfg.encoder_layers
  new_prefixes = tuple(f'encoder.{i}.' for i in range(depth, cfg.encoder_layers))
  stray = [k for k in missing if not k.startswith(new_prefixes)]
  if stray or unexpected:
    raise ValueError(f'Growing {src_cfg} left weights unmatched: missing {stray},'
                     f' unexpected {list(unexpected)}.')
  with torch.no_grad():
    for block in model.encoder[depth:]:
      for layer in (block.attn.o_proj, block.mlp.fc_out):
        layer.weight.zero_()
        layer.bias.zero_()
  return cfg.encoder_layers - depth
