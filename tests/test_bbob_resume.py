"""The BBOB benchmark's resume rule: a raw run counts as done only if it was made with the
weights the designer reads now (a new shipped checkpoint must not inherit the old one's runs)."""
import json
import pathlib
import sys

import pytest


@pytest.fixture(name='bbob')
def _bbob(monkeypatch):
  monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parents[1] / 'benchmarks'))
  import bbob  # pylint: disable=g-import-not-at-top
  yield bbob
  sys.modules.pop('bbob', None)


def test_a_raw_run_is_done_only_with_the_weights_it_was_made_with(bbob, tmp_path):
  other = tmp_path / 'other.pt'
  other.write_bytes(b'not the shipped weights')
  shipped = bbob.weights_of('omnipred')
  candidate = bbob.weights_of('omnipred_lora@new', {'new': str(other)})
  assert shipped and candidate and shipped != candidate
  assert bbob.weights_of('omnipred_lora') == shipped  # variants of one checkpoint share it
  assert bbob.weights_of('random') is None
  with pytest.raises(ValueError, match="reads candidate checkpoint 'gone'"):
    bbob.weights_of('omnipred@gone', {'new': str(other)})

  raw = tmp_path / 'omnipred_Sphere_4_0.json'
  assert not bbob.is_done(raw, shipped)
  raw.write_text(json.dumps({'values': [1.0], 'weights': candidate}))
  assert not bbob.is_done(raw, shipped)  # made with other weights: runs again
  assert bbob.is_done(raw, candidate)
  raw.write_text(json.dumps({'values': [1.0]}))  # from before runs recorded their weights
  assert not bbob.is_done(raw, shipped)
  assert bbob.is_done(raw, None)  # a baseline's run has no weights to differ
