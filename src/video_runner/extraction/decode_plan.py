"""Which packets the decoder must see so that the sampled frames come out exactly as before.

Input: one entry per coded picture, in demux (decoding) order, from a demux-only first pass,
kept as columns (:class:`PacketTable`, a few bytes per packet) so that the plan of a long video
stays small. A picture's *presentation index* (its ``frame_id`` under full decoding) is the rank
of its pts among all pts, because a decoder outputs one frame per picture in presentation order.
A packet is dropped when its picture is not selected and nothing depends on it, and in each run
between IDR pictures the packets after the run's last selected one (so also everything after the
video's last selected frame). With a set of selected frames (a plan by time, or within a range),
packets before the last IDR picture that precedes every selected one are dropped too: decoding
starts at that keyframe, as a seek would.

The plan is refused (``None``: decode everything) whenever that reasoning could fail: a missing
or repeated pts, a stream that does not start with an IDR picture, an end of sequence or a BLA
picture (decoders then skip pictures), a packet without a picture, or nothing to gain.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from video_runner.extraction.bitstream import Picture
from video_runner.extraction.decode_chunks import (
    Chunk,
    group_chunks,
    independent_starts,
    worth_splitting,
)

Int64s = npt.NDArray[np.int64]

# One byte per packet in a PacketTable: what dropping it depends on.
_IDR, _DISPOSABLE, _HAS_PICTURE, _RESETS, _INTRA_ONLY = 1, 2, 4, 8, 128
_TEMPORAL_SHIFT, _TEMPORAL_MASK = 4, 7


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """One packet of the first pass; ``picture`` is ``None`` for intra-only codecs."""

    pts: int | None
    picture: Picture | None


@dataclass(slots=True)
class PacketTable:
    """The first pass's packets as columns: 9 bytes per packet, however long the video.

    A long video has one packet per frame; a Python object per packet (and per picture) would
    make the plan, not the frames, what grows with the video's length.
    """

    pts: array[int] = field(default_factory=lambda: array("q"))
    kinds: bytearray = field(default_factory=bytearray)
    missing_pts: bool = False
    #: The smallest pts any packet has (packets without one left out).
    min_pts: int | None = None

    @classmethod
    def of(cls, packets: Iterable[PacketInfo]) -> PacketTable:
        table = cls()
        for packet in packets:
            table.append(packet.pts, packet.picture)
        return table

    def append(self, pts: int | None, picture: Picture | None) -> None:
        if pts is None:
            self.missing_pts = True
        elif self.min_pts is None or pts < self.min_pts:
            self.min_pts = pts
        self.pts.append(0 if pts is None else pts)
        self.kinds.append(_kind(picture))

    def __len__(self) -> int:
        return len(self.pts)


def _kind(picture: Picture | None) -> int:
    if picture is None:
        return _INTRA_ONLY
    return (
        (_IDR if picture.idr else 0)
        | (_DISPOSABLE if picture.disposable else 0)
        | (_HAS_PICTURE if picture.has_picture else 0)
        | (_RESETS if picture.resets_output else 0)
        | (min(picture.temporal_id, _TEMPORAL_MASK) << _TEMPORAL_SHIFT)
    )


@dataclass(frozen=True, slots=True, eq=False)
class DecodePlan:
    """The outcome for every packet, in demux order, and the frames decoding must then yield."""

    #: pts of each packet in demux order: the second pass checks it sees the same stream.
    pts: Int64s
    #: Whether each packet (same order) is kept from the decoder: 1 = dropped.
    drop: bytes
    #: Every pts, sorted: a pts' rank here is its presentation index.
    ordered: Int64s
    #: pts of the packets that are decoded, in presentation order: the frames to expect.
    decoded_pts: Int64s
    #: Most pictures any picture waits for before output (the reordering a decoder must allow).
    reorder_depth: int
    #: Presentation indices of the frames a plan by selection keeps.
    selected: frozenset[int] = frozenset()
    #: Or the sampling step of a plan that keeps every ``every_n``-th frame.
    every_n: int | None = None
    #: Demux ranges that decode independently, for parallel decoders; empty: one decoder.
    chunks: tuple[Chunk, ...] = ()

    @property
    def dropped(self) -> int:
        return self.drop.count(1)

    def expected_in(self, chunk: Chunk) -> Int64s:
        """pts of the frames a decoder fed the kept packets of ``chunk`` yields, in order."""
        # Chunks do not interleave in presentation order: theirs are the decoded pts in its span.
        start, end = chunk
        span = self.pts[start:end]
        expected: Int64s = self.decoded_pts[
            (self.decoded_pts >= span.min()) & (self.decoded_pts <= span.max())
        ]
        return expected

    def index_of(self, pts: int) -> int:
        """The presentation index of the packet with this pts."""
        return int(np.searchsorted(self.ordered, pts))

    def selects(self, index: int) -> bool:
        """Whether the frame at presentation ``index`` is one the sampling keeps."""
        if self.every_n is not None:
            return index % self.every_n == 0
        return index in self.selected


class PlanRefused(Exception):
    """Why the plan cannot be trusted; the caller decodes everything instead."""


def plan_decoding(
    packets: Sequence[PacketInfo] | PacketTable,
    every_n: int | None = None,
    *,
    selected: frozenset[int] | None = None,
) -> DecodePlan:
    """The plan for ``packets`` when every ``every_n``-th frame, or the frames of ``selected``
    (presentation indices), are kept; or PlanRefused."""
    if selected is None and (every_n is None or every_n < 2):  # noqa: PLR2004
        raise PlanRefused("every frame is selected")
    table = packets if isinstance(packets, PacketTable) else PacketTable.of(packets)
    if not len(table):
        raise PlanRefused("no packets")
    if table.missing_pts:
        raise PlanRefused("a packet has no pts")
    pts = np.frombuffer(table.pts, dtype=np.int64).copy()
    order = np.argsort(pts, kind="stable")
    ordered = pts[order]
    if np.any(ordered[1:] == ordered[:-1]):
        raise PlanRefused("two packets share a pts")
    index = np.empty_like(order)
    index[order] = np.arange(len(pts))  # presentation index of each packet, in demux order
    if selected is None:
        assert every_n is not None  # noqa: S101 - checked above
        chosen = index % every_n == 0
        first = 0
    else:
        chosen = np.isin(index, np.fromiter(selected, dtype=np.int64, count=len(selected)))
        first = _start_keyframe(table, chosen)
    position = np.arange(len(pts))
    kinds = np.frombuffer(table.kinds, dtype=np.uint8)
    starts = independent_starts((kinds & (_IDR | _INTRA_ONLY)) != 0, pts)
    drop = (position < first) | (~chosen & _disposable(table))
    drop |= _after_each_runs_last_chosen(starts, chosen)
    chunks = _chunks(kinds, starts)
    if not drop.any() and not chunks:
        raise PlanRefused("no packet can be dropped, nor the stream split")
    decoded = np.sort(pts[~drop])
    depth = reorder_depth(index)
    kept = frozenset() if selected is None else selected
    return DecodePlan(
        pts, drop.astype(np.uint8).tobytes(), ordered, decoded, depth, kept, every_n, chunks
    )


def _after_each_runs_last_chosen(
    starts: npt.NDArray[np.intp], chosen: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Packets no chosen picture needs: within each run from one of ``starts`` (IDR pictures
    nothing before is shown after) to the next, those decoded after the run's last chosen one,
    and whole runs with none chosen; so also everything after the video's last chosen picture.
    A picture is only ever referenced by pictures decoded after it, and nothing past the run's
    end refers into the run: what a plan by time gains most from (one frame a second keeps the
    first few pictures of a one-second GOP)."""
    run = np.zeros(len(chosen), dtype=np.intp)
    run[starts] = 1
    run = np.cumsum(run) - 1
    position = np.arange(len(chosen))
    last_chosen = np.full(len(starts), -1, dtype=np.intp)
    np.maximum.at(last_chosen, run, np.where(chosen, position, -1))
    unneeded: npt.NDArray[np.bool_] = position > last_chosen[run]
    return unneeded


def _chunks(kinds: npt.NDArray[np.uint8], starts: npt.NDArray[np.intp]) -> tuple[Chunk, ...]:
    """The stream's independent chunks when splitting it is worth it, else none.

    Intra-only streams are not split, though they could be: FFmpeg decodes them on one thread,
    which the worker pool's JPEG work already balances on two cores, and every lane reads the
    whole file again (measured: 8 % slower on the MJPEG bench file, decision 0010).
    """
    if (kinds & _INTRA_ONLY).any():
        return ()
    chunks = group_chunks(starts, len(kinds))
    return chunks if worth_splitting(chunks) else ()


def _start_keyframe(table: PacketTable, chosen: npt.NDArray[np.bool_]) -> int:
    """Demux position of the keyframe to start from (the end is the runs' rule)."""
    positions = np.flatnonzero(chosen)
    if not len(positions):
        raise PlanRefused("no frame is selected")
    start = 0
    for position in range(int(positions[0]), -1, -1):
        kind = table.kinds[position]
        # Only an IDR (or an intra-only packet) is a point that nothing later looks behind.
        if kind & (_INTRA_ONLY | _IDR):
            start = position
            break
    return start


def _disposable(table: PacketTable) -> npt.NDArray[np.bool_]:
    kinds = np.frombuffer(table.kinds, dtype=np.uint8)
    intra = (kinds & _INTRA_ONLY) != 0
    if intra.all():
        return np.ones(len(kinds), dtype=bool)  # intra-only: no picture depends on another
    if intra.any():
        raise PlanRefused("mixed intra-only and predicted packets")
    if not kinds[0] & _IDR:
        raise PlanRefused("the stream does not start with an IDR picture")
    if not ((kinds & _HAS_PICTURE) != 0).all():
        raise PlanRefused("a packet holds no picture")
    if ((kinds & _RESETS) != 0).any():
        raise PlanRefused("end of sequence or BLA picture: decoders may skip pictures")
    # Only the highest sub-layer present has nobody above it that could reference it.
    temporal = (kinds >> _TEMPORAL_SHIFT) & _TEMPORAL_MASK
    disposable: npt.NDArray[np.bool_] = ((kinds & _DISPOSABLE) != 0) & (temporal == temporal.max())
    return disposable


def reorder_depth(indices: Sequence[int] | Int64s) -> int:
    """Most pictures that precede one picture in decoding order and follow it in presentation.

    ``indices`` are presentation indices in decoding order (a permutation of 0..n-1).
    """
    values = array("q", np.asarray(indices, dtype=np.int64).tobytes())
    tree = array("q", bytes(8 * (len(values) + 1)))  # Fenwick tree of the indices seen so far
    depth = 0
    for seen, index in enumerate(values):
        position, below = index + 1, 0
        while position > 0:
            below += tree[position]
            position -= position & -position
        depth = max(depth, seen - below)
        position = index + 1
        while position < len(tree):
            tree[position] += 1
            position += position & -position
    return depth
