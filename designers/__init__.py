"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search.

`OmniPredDesigner` and `OmniPredDesignerConfig` load on first use, so that a program can call
`vizier_omnipred.runtime.configure_openmp()` after importing its command-line module.
"""

from __future__ import annotations

import importlib
import importlib.util

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']


def __getattr__(name: str):
  """The two exports, or a submodule by name (`designers.vizier_fixes`)."""
  if name in __all__:
    value = getattr(importlib.import_module('designers.omnipred_designer'), name)
  elif importlib.util.find_spec(f'{__name__}.{name}') is not None:
    value = importlib.import_module(f'{__name__}.{name}')
  else:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  globals()[name] = value
  return value
