"""Handing freed heap memory back to the operating system when the heap has grown.

A suggestion allocates tensors whose sizes change from step to step (one decoder row per
distinct prefix), and glibc keeps the freed pages of such a heap: a process running BBOB
studies one after another grew 905 -> 1229 MB over 8 studies. `malloc_trim` after every
suggestion held it at 543-560 MB but made suggestions ~0.1-0.3 s slower (of ~1.5 s at 50
trials, 4-D), because the next suggestion page-faults the memory back in. So the designer
trims only when resident memory has grown `slack_mb` past what it was after the last trim:
8 studies in a row then end at 544-562 MB (peak 931-997 MB), and a suggestion at 50 trials
takes what it took before any trimming (1.35 s vs 1.33 s, same session).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

_after_last_trim_mb = 0.0


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


def resident_mb() -> float:
  """This process's resident memory (Linux /proc; 0 elsewhere)."""
  try:
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
  except OSError:
    return 0.0


def release_free_memory(slack_mb: float = 0.0) -> bool:
  """Returns freed heap pages to the OS if resident memory grew more than `slack_mb` since
  the last release. True if it trimmed; False if it had no need or no way to."""
  global _after_last_trim_mb
  trim = _malloc_trim()
  if trim is None or resident_mb() <= _after_last_trim_mb + slack_mb:
    return False
  trim(0)
  _after_last_trim_mb = resident_mb()
  return True
