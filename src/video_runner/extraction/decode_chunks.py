"""Where a video splits into runs of packets that decode independently, one decoder each.

A decoder fed from an IDR picture produces exactly the pictures it produces in the middle of the
stream: nothing decoded later refers to anything before
that point. Where, in addition, every picture before the point is shown before every picture
after it, the frames of the two runs do not interleave in presentation order either. Such
points cut the video into *chunks* that single-threaded decoders can take in parallel, each
yielding its frames in order, and the chunks' frames one after the other are the whole video's
(docs/decisions/0010-parallel-chunks-of-independent-pictures.md).

A single-threaded decoder spends less CPU per picture than FFmpeg's frame threads (measured:
1.55 against 1.81 ms per 720p H.264 picture). Chunks are only worth it when there are several of
comparable size: otherwise the caller decodes the whole stream with frame threads, as before.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: The packets one chunk aims at: enough to amortise a decoder's start, few enough to balance.
CHUNK_PACKETS_MAX = 120
CHUNK_PACKETS_MIN = 8

Chunk = tuple[int, int]


def independent_starts(
    fresh: npt.NDArray[np.bool_], pts: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    """Demux positions where a chunk may start: ``fresh`` there (an IDR picture) and no picture
    before it shown after any picture from it on. Position 0 always is."""
    count = len(pts)
    if not count:
        return np.zeros(0, dtype=np.intp)
    shown_last_before = np.maximum.accumulate(pts)[:-1]
    shown_first_after = np.minimum.accumulate(pts[::-1])[::-1][1:]
    cut = np.zeros(count, dtype=bool)
    cut[0] = True
    cut[1:] = fresh[1:] & (shown_last_before < shown_first_after)
    return np.flatnonzero(cut)


def group_chunks(starts: npt.NDArray[np.intp], count: int) -> tuple[Chunk, ...]:
    """``(start, end)`` demux ranges of consecutive runs, each at least the target size (the
    last may be smaller), covering ``0..count``; the target grows with the video up to
    :data:`CHUNK_PACKETS_MAX` packets."""
    target = min(CHUNK_PACKETS_MAX, max(CHUNK_PACKETS_MIN, count // 8))
    chunks: list[Chunk] = []
    begin = 0
    for start in starts[1:].tolist():
        if start - begin >= target:
            chunks.append((begin, start))
            begin = start
    if count > begin:
        chunks.append((begin, count))
    return tuple(chunks)


def worth_splitting(chunks: tuple[Chunk, ...]) -> bool:
    """Two chunks at least, none holding more than half the packets: else one decoder with
    frame threads finishes sooner than the largest chunk on one thread."""
    if len(chunks) < 2:  # noqa: PLR2004
        return False
    total = chunks[-1][1] - chunks[0][0]
    return max(end - start for start, end in chunks) * 2 <= total
