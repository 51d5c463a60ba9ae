"""Label Studio's brush RLE (thi-ng ``rle-pack``), vectorised.

Layout of the bit stream (MSB first): 32 bits value count, 5 bits word size
- 1, four 4-bit run-length field sizes - 1, then runs. A run starts with one
bit: 1 = a repeated value (2-bit size index, ``length - 1`` in that many bits,
one word), 0 = literal values (2-bit size index, ``count - 1``, then ``count``
words). A brush mask is the flattened ``H x W x 4`` RGBA canvas; the alpha
channel is the mask.

:func:`encode` chooses runs exactly as ``label_studio_sdk.converter.brush
.encode_rle`` does (word size 8, field sizes 3/4/8/16, a length-1 run as a
1-value literal, the final padding of 1..8 zero bits), so its output is
byte-identical to the SDK's while running in numpy instead of string
concatenation. :func:`decode` reads any rle-pack stream, including the
literal runs Label Studio's front end writes (long ones in one numpy step;
the run headers are read one by one, the stream being sequential).
"""

from __future__ import annotations

import numpy as np

_SIZES = (3, 4, 8, 16)
_HEADER = [(None, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4)]  # (value, bits); None = count
ALPHA_THRESHOLD = 128  # an RGBA pixel belongs to the mask when alpha >= this
_LITERAL_VECTOR_MIN = 16  # shorter literal runs are read value by value: numpy's call costs more
_HEADER_BITS = 32 + 5 + 4 * 4
_MASK64 = (1 << 64) - 1
# bytes per image pixel that encoding or decoding a brush mask allocates: the
# RGBA canvas (4), its run bookkeeping and the mask (measured peak: ~11)
BRUSH_BYTES_PER_PX = 16


def encode(values: np.ndarray) -> list[int]:
    """Encode a 1-D uint8 array; returns the byte list Label Studio stores."""
    a = np.asarray(values, dtype=np.uint8).ravel()
    lengths, vals = _runs(a)
    return _encode_runs(lengths, vals, a.size)


def _runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, values) of the runs of equal values in a 1-D array."""
    if not a.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    return np.diff(np.r_[starts, a.size]), a[starts].astype(np.int64)


def _encode_runs(lengths: np.ndarray, vals: np.ndarray, n: int) -> list[int]:
    """rle-pack bytes of ``n`` values given as runs (lengths, values)."""
    head_vals = [n if v is None else v for v, _ in _HEADER]
    head_bits = [b for _, b in _HEADER]
    if n:
        # runs longer than 2**16 are written as 2**16-value chunks plus the rest
        chunks = (lengths - 1) // 65536 + 1
        rep = np.repeat(np.arange(len(lengths)), chunks)
        first = np.r_[0, np.cumsum(chunks)[:-1]]
        k = np.arange(rep.size) - first[rep]
        run_len = np.where(k < chunks[rep] - 1, 65536, lengths[rep] - 65536 * (chunks[rep] - 1))
        run_val = vals[rep]
        single = (lengths[rep] == 1)
        idx = np.select([lengths[rep] <= 8, lengths[rep] <= 16, lengths[rep] <= 256], [0, 1, 2], 3)
        width = np.array(_SIZES)[idx]
        f_vals = np.stack([~single & True, idx * ~single, (run_len - 1) * ~single, run_val], 1).astype(np.int64)
        f_bits = np.stack([np.ones_like(idx), np.full_like(idx, 2), np.where(single, 3, width), np.full_like(idx, 8)], 1)
        f_vals, f_bits = f_vals.ravel(), f_bits.ravel()
    else:
        f_vals = f_bits = np.zeros(0, np.int64)
    f_vals = np.r_[np.array(head_vals, np.int64), f_vals]
    f_bits = np.r_[np.array(head_bits, np.int64), f_bits]
    total = int(f_bits.sum())
    field = np.repeat(np.arange(f_bits.size), f_bits)
    pos_in_field = np.arange(total) - np.repeat(np.cumsum(f_bits) - f_bits, f_bits)
    bits = (f_vals[field] >> (f_bits[field] - 1 - pos_in_field)) & 1
    bits = np.r_[bits, np.zeros(8 - total % 8, np.int64)]  # the SDK always pads 1..8 bits
    return np.packbits(bits.astype(np.uint8)).tolist()


def decode(rle) -> np.ndarray:
    """Decode an rle-pack byte sequence to a 1-D array (uint8 for word size <= 8).

    Each run's place depends on the one before, so run headers are read one by
    one, each from a single 64-bit window (a header and a value take at most 51
    bits); values and lengths are gathered in lists and expanded once.
    """
    buf = bytes(rle) + bytes(8)
    total_bits = (len(buf) - 8) * 8
    from_bytes = int.from_bytes

    def window(pos: int) -> int:
        """The 64 bits from the byte holding ``pos``, shifted so bit ``pos`` is the top one (>= 57 valid)."""
        return (from_bytes(buf[pos >> 3 : (pos >> 3) + 8], "big") << (pos & 7)) & _MASK64

    if total_bits < _HEADER_BITS:
        raise ValueError("brush RLE is truncated")
    w = window(0)
    num = w >> 32
    word = ((w >> 27) & 31) + 1
    sizes = [((w >> (23 - 4 * k)) & 15) + 1 for k in range(4)]
    wmask = (1 << word) - 1
    vals: list[int] = []
    lens: list[int] = []
    bits = None  # the stream as a 0/1 array, made when a long literal run needs it
    pos, i = _HEADER_BITS, 0
    while i < num:
        w = window(pos)
        sz = sizes[(w >> 61) & 3]
        count = ((w >> (61 - sz)) & ((1 << sz) - 1)) + 1
        first = 3 + sz + word  # bits up to the end of the run's first value
        end = pos + (first if w >> 63 else 3 + sz + count * word)
        if end > total_bits:
            raise ValueError("brush RLE is truncated")
        i += count
        if i > num:
            raise ValueError(f"brush RLE run ends at {i}, past its {num} values")
        if w >> 63 or count == 1:  # a repeated value, or a literal of one: the value is in this window
            vals.append((w >> (64 - first)) & wmask)
            lens.append(count)
        elif count < _LITERAL_VECTOR_MIN:
            p = pos + 3 + sz
            for k in range(count):
                vals.append(window(p + k * word) >> (64 - word))
            lens.extend([1] * count)
        else:  # a long literal run (the front end writes them for the RGBA of a coloured brush): all at once
            if bits is None:
                bits = np.unpackbits(np.frombuffer(buf, np.uint8))
            vals.extend(_words(bits[pos + 3 + sz : end], word).tolist())
            lens.extend([1] * count)
        pos = end
    dtype = np.uint8 if word <= 8 else np.uint32
    return np.repeat(np.array(vals, dtype), np.array(lens, np.int64)) if vals else np.zeros(num, dtype)


def _words(bits: np.ndarray, word: int) -> np.ndarray:
    """Consecutive ``word``-bit big-endian values from a 0/1 array."""
    if word == 8:
        return np.packbits(bits)
    weights = np.left_shift(1, np.arange(word - 1, -1, -1, dtype=np.int64))
    return bits.reshape(-1, word).astype(np.int64) @ weights


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A 2-D mask as Label Studio brush RLE (all four RGBA channels 255 inside)."""
    # the canvas repeats each pixel 4 times: its runs are the mask's, 4 times as long
    # (not building the canvas: 1.7 -> 0.5 ms per 559x536 mask, benchmarks/RESULTS.md#the-ml-backend)
    m = np.ascontiguousarray(mask, dtype=bool).ravel()
    lengths, vals = _runs(m)
    return _encode_runs(lengths * 4, vals * 255, m.size * 4)


def declared_values(rle) -> int:
    """The value count a brush RLE's header declares (its first 32 bits)."""
    head = bytes(int(b) & 0xFF for b in list(rle[:4])) if len(rle) >= 4 else b""
    if len(head) < 4:
        raise ValueError("brush RLE shorter than its header")
    return int.from_bytes(head, "big")


def rle_to_mask(rle, height: int, width: int) -> np.ndarray:
    """Brush RLE to a boolean ``height x width`` mask (alpha channel). The
    header's value count is checked before anything is decoded."""
    declared = declared_values(rle)
    if declared != height * width * 4:
        raise ValueError(f"brush RLE holds {declared} values, expected {height}x{width}x4 = {height * width * 4}")
    values = decode(rle)
    return values.reshape(height, width, 4)[:, :, 3] >= ALPHA_THRESHOLD
