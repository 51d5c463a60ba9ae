"""Label Studio brush RLE: our numpy codec against the SDK's reference one."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from annot.converters.labelstudio_rle import decode, encode, mask_to_rle, rle_to_mask

runs = st.lists(st.tuples(st.integers(0, 255), st.integers(1, 70000)), min_size=1, max_size=12)  # the SDK fails on empty input


def _from_runs(rs):
    return np.concatenate([np.full(n, v, np.uint8) for v, n in rs]) if rs else np.zeros(0, np.uint8)


@settings(max_examples=60, deadline=None)
@given(rs=runs)
def test_encode_is_byte_identical_to_sdk(rs):
    a = _from_runs(rs)
    assert encode(a) == encode_rle(a)


@settings(max_examples=60, deadline=None)
@given(a=arrays(np.uint8, st.integers(0, 3000), elements=st.sampled_from([0, 0, 0, 7, 255])))
def test_round_trip_and_sdk_decode(a):
    rle = encode(a)
    assert np.array_equal(decode(rle), a)
    assert np.array_equal(decode_rle(rle), a)


@settings(max_examples=30, deadline=None)
@given(m=arrays(bool, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_mask_codec_agrees_with_sdk_mask2rle(m):
    ours = mask_to_rle(m)
    assert ours == mask2rle(m.astype(np.uint8) * 255)
    assert np.array_equal(rle_to_mask(ours, *m.shape), m)


def test_literal_runs_from_the_front_end_decode():
    # A stream with a literal run of 3 different values (what rle-pack writes
    # for noisy data): header, then 0 (literal), size index 0, count-1 = 2.
    bits = f"{3:032b}" + f"{7:05b}" + "0010" + "0011" + "0111" + "1111"
    bits += "0" + "00" + "010" + f"{1:08b}" + f"{2:08b}" + f"{3:08b}"
    bits += "0" * (-len(bits) % 8)
    data = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode(data).tolist() == [1, 2, 3]
    assert decode_rle(data).tolist() == [1, 2, 3]


def test_holes_survive():
    m = np.zeros((50, 60), bool)
    m[10:40, 10:50] = True
    m[20:30, 20:30] = False
    assert np.array_equal(rle_to_mask(mask_to_rle(m), 50, 60), m)
