"""Handing freed heap memory back to the operating system.

A suggestion allocates tensors whose sizes change from step to step (one decoder row per
distinct prefix), and glibc keeps the freed pages of such a heap. Measured on 8 BBOB studies
of 25 trials run one after another in one process: resident memory between suggestions grew
905 -> 1229 MB without trimming and stayed at 543-560 MB with `malloc_trim` after every
suggestion (peak 885-908 MB). A trim takes ~7 ms (of a 1.16 s suggestion, 8-D, 30 trials).
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _malloc_trim():
  """glibc's malloc_trim, or None (other platforms and C libraries)."""
  if not sys.platform.startswith('linux'):
    return None
  try:
    trim = ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
  except (OSError, AttributeError):  # e.g. musl has no malloc_trim
    return None
  trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
  return trim


def release_free_memory() -> bool:
  """Returns freed heap pages to the OS where the C library can; True if it could."""
  trim = _malloc_trim()
  if trim is None:
    return False
  trim(0)
  return True
