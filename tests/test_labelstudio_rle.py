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


def _rle_pack(values, word=8, sizes=(3, 4, 8, 16)) -> list[int]:
    """A reference rle-pack encoder that, like Label Studio's front end, gathers
    values that do not repeat into literal runs (up to 2**16 values each)."""
    out = [f"{len(values):032b}", f"{word - 1:05b}", *(f"{s - 1:04b}" for s in sizes)]

    def run(kind: str, count: int, words):
        k = next(k for k, s in enumerate(sizes) if count <= 1 << s)
        out.append(kind + f"{k:02b}" + f"{count - 1:0{sizes[k]}b}" + "".join(f"{v:0{word}b}" for v in words))

    literal: list[int] = []
    i = 0
    while i <= len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        if j - i >= 2 or i == len(values):
            for a in range(0, len(literal), 1 << sizes[-1]):
                chunk = literal[a : a + (1 << sizes[-1])]
                run("0", len(chunk), chunk)
            literal = []
            for a in range(i, j, 1 << sizes[-1]):
                run("1", min(j - a, 1 << sizes[-1]), [values[i]])
            i = max(j, i + 1)
        else:
            literal.append(int(values[i]))
            i = j
    bits = "".join(out)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[k : k + 8], 2) for k in range(0, len(bits), 8)]


segments = st.lists(st.tuples(st.booleans(), st.integers(1, 400), st.integers(0, 2**32 - 1)), max_size=8)


def _segmented(segs, top: int) -> np.ndarray:
    """Noise and constant stretches: literal runs long and short, and repeats."""
    parts = [np.random.default_rng(seed).integers(0, top, n) if noisy else np.full(n, seed % top)
             for noisy, n, seed in segs]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(segs=segments)
def test_long_literal_runs_decode_like_the_sdk(segs):
    a = _segmented(segs, 256).astype(np.uint8)
    rle = _rle_pack(a.tolist())
    assert np.array_equal(decode(rle), a)
    if a.size:  # the SDK's decoder fails on an empty stream
        assert np.array_equal(decode_rle(rle), a)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(segs=segments, word=st.sampled_from([3, 12, 16, 32]))
def test_literal_runs_of_other_word_sizes(segs, word):
    a = _segmented(segs, 1 << min(word, 31))
    assert np.array_equal(decode(_rle_pack(a.tolist(), word=word)), a)


def test_coloured_brush_stroke_from_the_front_end():
    """A red brush (RGBA 255, 0, 0, 255) never repeats a value inside the mask:
    the front end writes it as literal runs; the mask is its alpha channel."""
    m = np.zeros((40, 50), bool)
    m[5:30, 8:45] = True
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[m] = (255, 0, 0, 255)
    assert np.array_equal(rle_to_mask(_rle_pack(rgba.ravel().tolist()), 40, 50), m)
