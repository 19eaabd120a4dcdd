"""Label Studio brush masks: the thi.ng ``rle-pack`` bit stream, to and from COCO RLE.

Label Studio stores a ``brushlabels`` region as ``value.rle``: a list of byte values holding
the `@thi.ng/rle-pack <https://github.com/thi-ng/umbrella/tree/develop/packages/rle-pack>`_
encoding of the region's whole RGBA canvas, ``height * width * 4`` uint8 words in row-major
order. The bit stream, most significant bit of each byte first, is::

    32 bits   number of words
     5 bits   word size - 1                          (Label Studio: 8-bit words)
    4 x 4 bits  repeat/chunk count sizes - 1         (default 3, 4, 8, 16 bits)
    then blocks until every word is produced:
     1 bit    1 = repeat one word, 0 = a chunk of literal words
     2 bits   which of the four count sizes follows
     m bits   count - 1
     n bits   the repeated word, or ``count`` literal words

Decoding is sequential by nature (a block's width depends on the one before), so one Python
step runs per *block*; literal words are read in one vectorized gather and the words are
expanded with a single ``np.repeat``. The encoder writes repeat blocks only (a one-word
repeat costs as many bits as a one-word chunk) and packs all fields with numpy at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgate.core._typing import FloatArray, IntArray, UInt8Array

__all__ = [
    "coco_to_ls_rle",
    "decode_ls_rle",
    "encode_ls_rle",
    "ls_rle_to_coco",
]

#: Repeat/chunk count sizes in bits written by the encoder (thi.ng's defaults).
_COUNT_BITS = (3, 4, 8, 16)
_MAX_RUN = 1 << _COUNT_BITS[-1]  # 65536 words per block at most
_WORD_BITS = 8


class _Bits:
    """Random access to big-endian bit fields of up to 32 bits in a byte string."""

    def __init__(self, data: UInt8Array) -> None:
        self.size = len(data) * 8
        padded = np.zeros(len(data) + 5, dtype=np.int64)
        padded[: len(data)] = data
        # 40-bit big-endian window starting at every byte: any <= 32-bit field fits in one
        self.windows = (
            (padded[:-4] << 32)
            | (padded[1:-3] << 24)
            | (padded[2:-2] << 16)
            | (padded[3:-1] << 8)
            | padded[4:]
        )[: len(data) + 1]
        self.window_list: list[int] = self.windows.tolist()

    def read(self, position: int, width: int) -> int:
        """The ``width``-bit unsigned field at bit ``position`` (caller checks the bounds)."""
        window = self.window_list[position >> 3]
        return (window >> (40 - (position & 7) - width)) & ((1 << width) - 1)

    def read_many(self, start: int, count: int, width: int) -> IntArray:
        """``count`` consecutive ``width``-bit fields from bit ``start``, vectorized."""
        positions = start + width * np.arange(count, dtype=np.int64)
        window = self.windows[positions >> 3]
        return (window >> (40 - (positions & 7) - width)) & ((1 << width) - 1)  # type: ignore[no-any-return]  # numpy stubs type shifts as Any


def decode_ls_rle(rle: Sequence[int] | UInt8Array) -> UInt8Array:
    """Decode a Label Studio / thi.ng ``rle-pack`` byte list into its words.

    Parameters
    ----------
    rle
        The bytes, as Label Studio's ``value.rle`` list of ints 0..255.

    Returns
    -------
    UInt8Array
        (num,) the decoded words (Label Studio: flattened RGBA, ``height * width * 4``).

    Raises
    ------
    ValueError
        Bytes outside 0..255, a word size other than 8, or a stream that ends before
        ``num`` words are produced.

    Examples
    --------
    >>> decode_ls_rle(encode_ls_rle(np.array([0, 0, 0, 255, 7], dtype=np.uint8))).tolist()
    [0, 0, 0, 255, 7]
    """
    data = np.asarray(rle)
    if data.ndim != 1 or (data.size and data.dtype.kind not in "iu"):
        raise ValueError(f"expected a list of byte values, got dtype {data.dtype}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError("expected byte values in 0..255")
    bits = _Bits(data.astype(np.int64))
    header_bits = 32 + 5 + 16
    if bits.size < header_bits:
        raise ValueError(f"expected a {header_bits}-bit header, got {bits.size} bits")
    num = bits.read(0, 32)
    word_bits = bits.read(32, 5) + 1
    if word_bits != _WORD_BITS:
        raise ValueError(f"expected 8-bit words (RGBA bytes), got {word_bits}-bit words")
    count_bits = [bits.read(37 + 4 * k, 4) + 1 for k in range(4)]
    position = header_bits
    produced = 0
    values: list[IntArray] = []
    repeats: list[IntArray] = []
    run_values: list[int] = []
    run_lengths: list[int] = []
    end = bits.size
    while produced < num:
        if position + 3 > end:
            raise ValueError(f"stream ends after {produced} of {num} words")
        flag = bits.read(position, 1)
        size = count_bits[bits.read(position + 1, 2)]
        position += 3
        if position + size > end:
            raise ValueError(f"stream ends after {produced} of {num} words")
        count = bits.read(position, size) + 1
        position += size
        if flag:
            if position + word_bits > end:
                raise ValueError(f"stream ends after {produced} of {num} words")
            run_values.append(bits.read(position, word_bits))
            run_lengths.append(count)
            position += word_bits
        else:
            if position + count * word_bits > end:
                raise ValueError(f"stream ends after {produced} of {num} words")
            if run_values:  # flush the pending repeats, keeping block order
                values.append(np.array(run_values, dtype=np.int64))
                repeats.append(np.array(run_lengths, dtype=np.int64))
                run_values, run_lengths = [], []
            values.append(bits.read_many(position, count, word_bits))
            repeats.append(np.ones(count, dtype=np.int64))
            position += count * word_bits
        produced += count
    if run_values:
        values.append(np.array(run_values, dtype=np.int64))
        repeats.append(np.array(run_lengths, dtype=np.int64))
    if not values:
        return np.zeros(0, dtype=np.uint8)
    words = np.repeat(np.concatenate(values).astype(np.uint8), np.concatenate(repeats))
    # thi.ng's decoder writes into a num-word array, so a last block running past the end
    # is cut off there
    return words[:num]


def _pack_fields(values: IntArray, widths: IntArray) -> list[int]:
    """Concatenate unsigned fields (big-endian, MSB first) and pack them into bytes."""
    total = int(widths.sum())
    owner = np.repeat(np.arange(len(widths)), widths)
    first = np.cumsum(widths) - widths
    shift = widths[owner] - 1 - (np.arange(total, dtype=np.int64) - first[owner])
    bit_array = ((values[owner] >> shift) & 1).astype(np.uint8)
    return np.packbits(bit_array).tolist()


def _encode_runs(run_values: IntArray, run_lengths: IntArray, total: int) -> list[int]:
    """Encode runs (value, length) of 8-bit words as repeat blocks."""
    # a run longer than 65536 words becomes several blocks of at most 65536
    blocks_per_run = (run_lengths + _MAX_RUN - 1) // _MAX_RUN
    block_value = np.repeat(run_values, blocks_per_run)
    block_length = np.full(len(block_value), _MAX_RUN, dtype=np.int64)
    last_block = np.cumsum(blocks_per_run) - 1
    block_length[last_block] = run_lengths - _MAX_RUN * (blocks_per_run - 1)
    minus_one = block_length - 1
    limits = np.array([1 << b for b in _COUNT_BITS[:-1]], dtype=np.int64)
    size_class = np.searchsorted(limits, minus_one, side="right").astype(np.int64)
    count_width = np.array(_COUNT_BITS, dtype=np.int64)[size_class]
    nblocks = len(block_value)
    fields = np.empty((nblocks, 4), dtype=np.int64)
    fields[:, 0] = 1
    fields[:, 1] = size_class
    fields[:, 2] = minus_one
    fields[:, 3] = block_value
    widths = np.empty((nblocks, 4), dtype=np.int64)
    widths[:, 0] = 1
    widths[:, 1] = 2
    widths[:, 2] = count_width
    widths[:, 3] = _WORD_BITS
    header_values = np.array([total, _WORD_BITS - 1, *(b - 1 for b in _COUNT_BITS)], dtype=np.int64)
    header_widths = np.array([32, 5, 4, 4, 4, 4], dtype=np.int64)
    return _pack_fields(
        np.concatenate([header_values, fields.ravel()]),
        np.concatenate([header_widths, widths.ravel()]),
    )


def _runs(flat: IntArray) -> tuple[IntArray, IntArray]:
    """Maximal runs of equal values: ``(values, lengths)``."""
    if len(flat) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]))
    lengths = np.diff(np.append(starts, len(flat)))
    return flat[starts].astype(np.int64), lengths.astype(np.int64)


def encode_ls_rle(words: UInt8Array) -> list[int]:
    """Encode 8-bit words as a thi.ng ``rle-pack`` byte list (Label Studio's ``value.rle``).

    Examples
    --------
    >>> encode_ls_rle(np.zeros(4, dtype=np.uint8))
    [0, 0, 0, 4, 57, 27, 252, 96, 0]
    """
    flat = np.asarray(words).astype(np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise ValueError("expected 8-bit words")
    values, lengths = _runs(flat)
    return _encode_runs(values, lengths, len(flat))


def ls_rle_to_coco(
    rle: Sequence[int] | UInt8Array, height: int, width: int
) -> tuple[IntArray, FloatArray]:
    """Decode a brush region into COCO uncompressed RLE and its tight pixel box.

    The mask is the alpha channel > 0 of the decoded RGBA canvas (what Label Studio's
    converter takes).

    Parameters
    ----------
    rle
        Label Studio's ``value.rle`` bytes.
    height, width
        The image size (``original_height``, ``original_width``).

    Returns
    -------
    counts : IntArray
        COCO uncompressed RLE: column-major runs starting with a background run.
    bbox : FloatArray
        (4,) ``x1, y1, x2, y2`` of the foreground pixels; zeros for an empty mask.

    Raises
    ------
    ValueError
        The stream is malformed or does not decode to ``height * width * 4`` words.

    Examples
    --------
    >>> counts, bbox = ls_rle_to_coco(coco_to_ls_rle(np.array([2, 3, 1]), 2, 3), 2, 3)
    >>> counts.tolist(), bbox.tolist()
    ([2, 3, 1], [1.0, 0.0, 3.0, 2.0])
    """
    expected = height * width * 4
    header = np.asarray(rle[:4] if len(rle) >= 4 else [], dtype=np.int64)
    if len(header) == 4:
        num = int((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3])
        if num != expected:
            raise ValueError(
                f"decodes to {num} values, expected height*width*4 = "
                f"{height}*{width}*4 = {expected}"
            )
    words = decode_ls_rle(rle)
    if len(words) != expected:  # pragma: no cover - the header check above catches it
        raise ValueError(f"decodes to {len(words)} values, expected {expected}")
    mask = words[3::4].reshape(height, width) > 0
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows):
        bbox = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
    else:
        bbox = np.zeros(4, dtype=np.float64)
    return _coco_counts(mask.ravel(order="F")), bbox


def _coco_counts(column_major: np.ndarray[tuple[int], np.dtype[np.bool_]]) -> IntArray:
    """COCO uncompressed RLE counts of a flat column-major boolean mask."""
    if len(column_major) == 0:
        return np.zeros(1, dtype=np.int64)
    values, lengths = _runs(column_major.astype(np.int64))
    if values[0]:  # COCO runs start with background
        lengths = np.concatenate([[0], lengths])
    return lengths


def coco_to_ls_rle(counts: IntArray, height: int, width: int) -> list[int]:
    """Encode a COCO uncompressed RLE mask as Label Studio's brush ``value.rle``.

    Foreground pixels become RGBA (255, 255, 255, 255), background (0, 0, 0, 0), as Label
    Studio's own converter writes them.

    Examples
    --------
    >>> len(coco_to_ls_rle(np.array([3, 1]), 2, 2))
    11
    """
    counts = np.asarray(counts, dtype=np.int64)
    column_major = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    row_major = column_major.reshape(width, height).T.ravel()
    values, lengths = _runs(row_major.astype(np.int64))
    # every pixel is four equal words, so pixel runs are word runs four times as long
    return _encode_runs(values * 255, lengths * 4, height * width * 4)
