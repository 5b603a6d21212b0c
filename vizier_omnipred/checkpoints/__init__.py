"""Checkpoint files: the shipped pretrained weights and how to read and write them.

A checkpoint is one `torch.save` of plain data (loadable with `weights_only=True`):
``{'format', 'model_config', 'state_dict', 'card'}``. The card records how it was made.
"""

from __future__ import annotations

import os
import pathlib

import torch

from vizier_omnipred.model import ModelConfig, OmniPredModel

FORMAT = 'vizier-omnipred/1'
SHIPPED = pathlib.Path(__file__).parent / 'omnipred-small.pt'


def save(path: str | os.PathLike, model: OmniPredModel, card: dict) -> None:
  torch.save({
      'format': FORMAT,
      'model_config': model.model_config.to_dict(),
      'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
      'card': dict(card),
  }, pathlib.Path(path))


def load(path: str | os.PathLike | None = None, *,
         device: str | torch.device | None = None) -> tuple[OmniPredModel, dict]:
  """-> (model in eval mode, card). No path: the checkpoint shipped with the package."""
  path = pathlib.Path(path) if path is not None else SHIPPED
  if not path.exists():
    if path == SHIPPED:
      raise FileNotFoundError(
          f'No pretrained checkpoint is shipped at {SHIPPED}. Train one with'
          ' `vizier-omnipred pretrain`, pass its path, or use'
          ' OmniPredRegressor.from_scratch() for an untrained model.'
      )
    raise FileNotFoundError(f'Checkpoint {path} does not exist.')
  blob = torch.load(path, map_location=device or 'cpu', weights_only=True)
  if not isinstance(blob, dict) or blob.get('format') != FORMAT:
    raise ValueError(f'{path} is not a {FORMAT} checkpoint.')
  model = OmniPredModel(ModelConfig.from_dict(blob['model_config']))
  model.load_state_dict(blob['state_dict'])
  if device is not None:
    model.to(device)
  return model.eval(), dict(blob.get('card', {}))
