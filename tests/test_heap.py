import ctypes
import os

import pytest

from vizier_omnipred import heap


def _rss_mb() -> float:
  return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


@pytest.mark.skipif(heap._malloc_trim() is None, reason='needs glibc malloc_trim')
def test_freed_heap_pages_go_back_to_the_os():
  blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(3000)]  # ~190 MB of heap
  del blocks[:-1]  # the last block keeps the top of the heap in use
  kept = _rss_mb()
  assert heap.release_free_memory()
  assert _rss_mb() < kept - 100  # freed but kept by malloc before; returned after
  del blocks


def test_without_malloc_trim_it_reports_that_it_did_nothing(monkeypatch):
  monkeypatch.setattr(heap, '_malloc_trim', lambda: None)
  assert heap.release_free_memory() is False
