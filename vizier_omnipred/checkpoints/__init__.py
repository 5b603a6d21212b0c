"""Checkpoint files: the shipped pretrained weights and how to read and write them.

A checkpoint is one `torch.save` of plain data (loadable with `weights_only=True`):
``{'format', 'model_config', 'state_dict', 'card'}``. The card records how it was made.
Two kinds ship: the surrogate LM (`load`) and the symbolic-regression model
(`vizier_omnipred.symbolic.model.load_pretrained`, through `load_file` here). Each model class
names its format in `checkpoint_format`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Callable

import torch
from torch import nn

from vizier_omnipred.model import ModelConfig, OmniPredModel, acts_only_with_priors

FORMAT = OmniPredModel.checkpoint_format
SHIPPED = pathlib.Path(__file__).parent / 'omnipred-small.pt'
SHIPPED_SYMBOLIC = pathlib.Path(__file__).parent / 'symbolic-small.pt'
# The surrogate trained further to read prior studies (`set_priors`); its card: TRANSFER.md.
SHIPPED_TRANSFER = pathlib.Path(__file__).parent / 'omnipred-transfer.pt'


def save(path: str | os.PathLike, model: nn.Module, card: dict) -> None:
  """`model`: any model class with `checkpoint_format` and a `model_config.to_dict()`."""
  torch.save({
      'format': model.checkpoint_format,
      'model_config': model.model_config.to_dict(),
      'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
      'card': dict(card),
  }, pathlib.Path(path))


def card_from_summary(name: str, summary: dict) -> dict:
  """Flat, weights_only-loadable card (strings and numbers only) from a training summary."""
  return {
      'name': name, 'steps': summary['steps'],
      'num_parameters': summary['num_parameters'], 'wall_time_s': summary['wall_time_s'],
      'world_size': summary['world_size'], 'device': summary['device'],
      'final_val_loss': summary['final_val_loss'], 'seed': summary['seed'],
      'train_config': json.dumps(summary['train_config']),
  }


def weights_digest(path: str | os.PathLike, *, with_priors: bool = True) -> str:
  """sha256 (hex) of what a checkpoint predicts with: its format, model config and tensors.
  The card is left out: it records how the weights were made, and shipping a run rewrites it
  (`model_card --ship`), so the shipped file and the run it came from share one digest.
  `with_priors=False` (for runs that give no prior studies): also the config fields that act
  only with prior studies, and the weights of the modules named like them
  (`model.acts_only_with_priors`: the prior-study gate), so that adding them to a checkpoint
  leaves the digest of what it predicts without prior studies alone."""
  check_file(path)
  try:
    blob = torch.load(path, map_location='cpu', weights_only=True)
    digest = hashlib.sha256(str(blob['format']).encode())
    config = {k: v for k, v in blob['model_config'].items()
              if with_priors or not acts_only_with_priors(k)}
    digest.update(json.dumps(config, sort_keys=True).encode())
    for name in sorted(blob['state_dict']):
      if not with_priors and acts_only_with_priors(name.split('.')[0]):
        continue
      tensor = blob['state_dict'][name].detach().cpu().contiguous()
      digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)}'.encode())
      digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{path} is not a readable checkpoint: {type(e).__name__}: {str(e)[:200]}'
                     ) from None
  return digest.hexdigest()


def check_file(path: str | os.PathLike) -> None:
  """Fails early, naming the file, when `path` cannot be a checkpoint at all."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'Checkpoint {path} does not exist.')
  if not path.is_file():
    raise ValueError(f'Checkpoint {path} is not a file.')
  if path.stat().st_size == 0:
    raise ValueError(f'Checkpoint {path} is empty (0 bytes).')


def load_file(path, shipped: pathlib.Path, fmt: str, build: Callable[[dict], nn.Module], device,
              how_to_train: str) -> tuple[nn.Module, dict]:
  """-> (model built by `build(model_config)` with the file's weights, in eval mode; card).
  No path: `shipped`. Every failure names the file and what is wrong with it."""
  path = pathlib.Path(path) if path is not None else shipped
  if not path.exists():
    if path == shipped:
      raise FileNotFoundError(f'No pretrained checkpoint is shipped at {shipped}. {how_to_train}')
    raise FileNotFoundError(f'Checkpoint {path} does not exist.')
  check_file(path)
  try:
    blob = torch.load(path, map_location=device or 'cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    # torch's own message advises weights_only=False, which would run code from the file:
    # never pass that advice on.
    raise ValueError(f'{path} is not a readable {fmt} checkpoint: torch.load could not read'
                     f' it as plain tensors ({type(e).__name__}). Is it truncated, or another'
                     ' kind of file?') from None
  if not isinstance(blob, dict) or blob.get('format') != fmt:
    found = blob.get('format') if isinstance(blob, dict) else type(blob).__name__
    raise ValueError(f'{path} is not a {fmt} checkpoint (found {found!r}).')
  try:
    model = build(blob['model_config'])
    model.load_state_dict(blob['state_dict'])
  except (KeyError, TypeError, RuntimeError) as e:
    raise ValueError(f'{path} is a damaged {fmt} checkpoint: its weights do not match its'
                     f' config ({type(e).__name__}: {str(e)[:200]}).') from None
  if device is not None:
    model.to(device)
  return model.eval(), dict(blob.get('card', {}))


def load(path: str | os.PathLike | None = None, *,
         device: str | torch.device | None = None) -> tuple[OmniPredModel, dict]:
  """-> (surrogate model in eval mode, card). No path: the checkpoint shipped with the package."""
  return load_file(path, SHIPPED, FORMAT, lambda c: OmniPredModel(ModelConfig.from_dict(c)), device,
               'Train one with `vizier-omnipred pretrain`, pass its path, or use'
               ' OmniPredRegressor.from_scratch() for an untrained model.')
