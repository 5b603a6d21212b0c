"""Vizier-facing parts: the OmniPred designer, acquisition functions, candidate search.

`OmniPredDesigner` and `OmniPredDesignerConfig` load on first use, so that a program can call
`vizier_omnipred.runtime.configure_openmp()` after importing its command-line module.
"""

from __future__ import annotations

import importlib

__all__ = ['OmniPredDesigner', 'OmniPredDesignerConfig']


def __getattr__(name: str):
  if name in __all__:
    value = getattr(importlib.import_module('designers.omnipred_designer'), name)
    globals()[name] = value
    return value
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
