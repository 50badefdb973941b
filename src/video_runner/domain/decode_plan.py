"""Which packets the decoder must see so that the sampled frames come out exactly as before.

Input: one :class:`PacketInfo` per coded picture, in demux (decoding) order, from a demux-only
first pass. A picture's *presentation index* (its ``frame_id`` under full decoding) is the rank
of its pts among all pts, because a decoder outputs one frame per picture in presentation order.
A packet is dropped when its picture is not selected and nothing depends on it. With a set of
selected frames (a plan by time, or within a range), packets before the last IDR picture that
precedes every selected one, and packets after the last selected one, are dropped too: decoding
starts at that keyframe, as a seek would, and stops after the last frame it needs.

The plan is refused (``None``: decode everything) whenever that reasoning could fail: a missing
or repeated pts, a stream that does not start with an IDR picture, an end of sequence or a BLA
picture (decoders then skip pictures), a packet without a picture, or nothing to gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from video_runner.domain.bitstream import Picture


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """One packet of the first pass; ``picture`` is ``None`` for intra-only codecs."""

    pts: int | None
    picture: Picture | None


@dataclass(frozen=True, slots=True)
class DecodePlan:
    """The outcome for every packet, in demux order, and the frames decoding must then yield."""

    #: pts of each packet in demux order: the second pass checks it sees the same stream.
    pts: tuple[int, ...]
    #: Whether each packet (same order) is kept from the decoder.
    drop: tuple[bool, ...]
    #: pts -> presentation index, for every packet.
    index_of: dict[int, int]
    #: pts of the packets that are decoded, in presentation order: the frames to expect.
    decoded_pts: tuple[int, ...]
    #: Most pictures any picture waits for before output (the reordering a decoder must allow).
    reorder_depth: int
    #: Presentation indices of the frames the sampling keeps: what the extraction must yield.
    selected: frozenset[int] = frozenset()

    @property
    def dropped(self) -> int:
        return sum(self.drop)


class PlanRefused(Exception):
    """Why the plan cannot be trusted; the caller decodes everything instead."""


def plan_decoding(
    packets: Sequence[PacketInfo],
    every_n: int | None = None,
    *,
    selected: frozenset[int] | None = None,
) -> DecodePlan:
    """The plan for ``packets`` when every ``every_n``-th frame, or the frames of ``selected``
    (presentation indices), are kept; or PlanRefused."""
    if selected is None and (every_n is None or every_n < 2):  # noqa: PLR2004
        raise PlanRefused("every frame is selected")
    if not packets:
        raise PlanRefused("no packets")
    pts = tuple(_known_pts(packets))
    if len(set(pts)) != len(pts):
        raise PlanRefused("two packets share a pts")
    ordered = sorted(pts)
    index_of = {value: index for index, value in enumerate(ordered)}
    disposable = _disposable(packets)
    if selected is None:
        assert every_n is not None  # noqa: S101 - checked above
        selected = frozenset(range(0, len(pts), every_n))
        first, last = 0, len(pts) - 1
    else:
        first, last = _needed_span(packets, [index_of[v] in selected for v in pts])
    drop = tuple(
        position < first or position > last or (index_of[value] not in selected and can_drop)
        for position, (value, can_drop) in enumerate(zip(pts, disposable, strict=True))
    )
    if not any(drop):
        raise PlanRefused("no packet can be dropped")
    decoded = tuple(sorted(value for value, dropped in zip(pts, drop, strict=True) if not dropped))
    depth = reorder_depth([index_of[v] for v in pts])
    return DecodePlan(pts, drop, index_of, decoded, depth, selected)


def _needed_span(packets: Sequence[PacketInfo], chosen: Sequence[bool]) -> tuple[int, int]:
    """Demux positions of the keyframe to start from and of the last packet needed."""
    positions = [position for position, wanted in enumerate(chosen) if wanted]
    if not positions:
        raise PlanRefused("no frame is selected")
    start = 0
    for position in range(positions[0], -1, -1):
        picture = packets[position].picture
        # Only an IDR (or an intra-only packet) is a point that nothing later looks behind.
        if picture is None or picture.idr:
            start = position
            break
    return start, positions[-1]


def _known_pts(packets: Sequence[PacketInfo]) -> list[int]:
    values = []
    for packet in packets:
        if packet.pts is None:
            raise PlanRefused("a packet has no pts")
        values.append(packet.pts)
    return values


def _disposable(packets: Sequence[PacketInfo]) -> list[bool]:
    pictures = [packet.picture for packet in packets]
    if all(picture is None for picture in pictures):
        return [True] * len(pictures)  # intra-only: no picture depends on another
    known = [picture for picture in pictures if picture is not None]
    if len(known) != len(pictures):
        raise PlanRefused("mixed intra-only and predicted packets")
    if not known[0].idr:
        raise PlanRefused("the stream does not start with an IDR picture")
    if any(not picture.has_picture for picture in known):
        raise PlanRefused("a packet holds no picture")
    if any(picture.resets_output for picture in known):
        raise PlanRefused("end of sequence or BLA picture: decoders may skip pictures")
    # Only the highest sub-layer present has nobody above it that could reference it.
    top = max(picture.temporal_id for picture in known)
    return [picture.disposable and picture.temporal_id == top for picture in known]


def reorder_depth(indices: Sequence[int]) -> int:
    """Most pictures that precede one picture in decoding order and follow it in presentation.

    ``indices`` are presentation indices in decoding order (a permutation of 0..n-1).
    """
    tree = [0] * (len(indices) + 1)  # Fenwick tree of the indices seen so far
    depth = 0
    for seen, index in enumerate(indices):
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
