import math

import numpy as np
import pytest

from vizier_omnipred.numbers import NumberCodec

CODEC = NumberCodec(digits=4, min_exponent=-30, max_exponent=30)


@pytest.mark.parametrize('value, decoded, text', [
    (0.0, 0.0, '<+><0><0><0><0><E0>'),
    (-2.5, -2.5, '<-><2><5><0><0><E-3>'),
    (12.34, 12.34, '<+><1><2><3><4><E-2>'),
    (1e-12, 1e-12, '<+><1><0><0><0><E-15>'),
    (3.14159, 3.142, '<+><3><1><4><2><E-3>'),
    (1e30, 1e30, '<+><1><0><0><0><E27>'),
    (-7.77e-5, -7.77e-5, '<-><7><7><7><0><E-8>'),
    (9.99996, 10.0, '<+><1><0><0><0><E-2>'),        # rounds up into the next exponent
    (0.00099996, 0.001, '<+><1><0><0><0><E-6>'),
    (99995.0, 1.0e5, '<+><1><0><0><0><E2>'),
    (1e-31, 0.0, '<+><0><0><0><0><E0>'),            # below the smallest exponent: zero
])
def test_round_trip_table(value, decoded, text):
  ids = CODEC.encode(value)
  assert len(ids) == CODEC.length == 6
  assert math.isclose(CODEC.decode(ids), decoded, rel_tol=1e-12, abs_tol=0.0)
  assert CODEC.format_tokens(ids) == text


def test_round_trip_keeps_four_significant_digits():
  rng = np.random.default_rng(0)
  values = rng.standard_normal(2000) * 10.0 ** rng.integers(-25, 25, 2000)
  decoded = CODEC.decode_many(CODEC.encode_many(values))
  np.testing.assert_allclose(decoded, values, rtol=5.001e-4)


def test_vectorised_encoding_equals_scalar_encoding():
  rng = np.random.default_rng(1)
  values = np.concatenate([
      rng.standard_normal(3000) * 10.0 ** rng.integers(-29, 29, 3000),
      [0.0, 1.0, 10.0, 100.0, 1e-5, 9.99995, 0.0999951, -999.96]])
  expected = np.array([CODEC.encode(v) for v in values])
  np.testing.assert_array_equal(CODEC.encode_many(values), expected)


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_is_rejected_with_the_value_named(bad):
  with pytest.raises(ValueError, match='non-finite'):
    CODEC.encode(bad)
  with pytest.raises(ValueError, match='non-finite'):
    CODEC.encode_many([1.0, bad])


def test_too_large_names_value_and_limit():
  with pytest.raises(ValueError, match=r'1e\+31.*above the largest representable exponent 30'):
    CODEC.encode(1e31)


def test_every_in_range_id_sequence_parses():
  rng = np.random.default_rng(2)
  ids = np.stack([rng.integers(0, s, 500) for s in CODEC.slot_sizes], axis=1)
  assert np.all(np.isfinite(CODEC.decode_many(ids)))


@pytest.mark.parametrize('kwargs', [{'digits': 0}, {'min_exponent': 3, 'max_exponent': 3}])
def test_bad_codec_config(kwargs):
  with pytest.raises(ValueError, match='NumberCodec'):
    NumberCodec(**kwargs)


def test_decode_rejects_out_of_range_ids():
  with pytest.raises(ValueError, match='Slot 2'):
    CODEC.decode((0, 0, 10, 0, 0, 0))
