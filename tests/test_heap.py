import ctypes

import pytest

from vizier_omnipred import heap

needs_glibc = pytest.mark.skipif(heap._malloc_trim() is None, reason='needs glibc malloc_trim')


def _fragment() -> list:
  blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(3000)]  # ~190 MB of heap
  del blocks[:-1]  # the last block keeps the top of the heap in use
  return blocks


@needs_glibc
def test_freed_heap_pages_go_back_to_the_os():
  heap.release_free_memory()
  blocks = _fragment()
  kept = heap.resident_mb()
  assert heap.release_free_memory(slack_mb=100)
  assert heap.resident_mb() < kept - 100  # freed but kept by malloc before; returned after
  del blocks


@needs_glibc
def test_no_trim_while_growth_is_within_the_slack():
  heap.release_free_memory()
  blocks = _fragment()
  kept = heap.resident_mb()
  assert not heap.release_free_memory(slack_mb=10_000)
  assert heap.resident_mb() > kept - 10
  assert heap.release_free_memory(slack_mb=0)
  del blocks


def test_without_malloc_trim_it_reports_that_it_did_nothing(monkeypatch):
  monkeypatch.setattr(heap, '_malloc_trim', lambda: None)
  assert heap.release_free_memory() is False
