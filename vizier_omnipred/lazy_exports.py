"""A package's names loaded on first use (PEP 562), so importing the package loads nothing."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Callable, Mapping


def getattr_for(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
  """-> the package's `__getattr__`: `exports` maps a name to the submodule defining it; any
  other name that is a submodule of `package` loads that submodule."""
  namespace = importlib.import_module(package).__dict__

  def module_getattr(name: str):
    if name in exports:
      value = getattr(importlib.import_module(f'{package}.{exports[name]}'), name)
    elif importlib.util.find_spec(f'{package}.{name}') is not None:
      value = importlib.import_module(f'{package}.{name}')
    else:
      raise AttributeError(f'module {package!r} has no attribute {name!r}')
    namespace[name] = value
    return value
  return module_getattr
