"""Selective decoding of an intra-only stream decided packet by packet, without a first pass.

In an intra-only stream (MJPEG, ProRes, DNxHD) no picture depends on another and a decoder outputs
one frame per packet in demux order. So while the pts strictly increase in demux order, a
packet's position *is* its presentation index, and whether the sampling keeps it is known as it
is read: no demux-only first pass over the whole file is needed (for MJPEG that pass read
164 MB before the first frame was decoded, on one core, 8 % of the extraction's time).

The rule is checked as the stream is read, and any doubt raises :class:`PlanRefused`: a missing
or non-increasing pts, a frame out of its expected place, or an MJPEG picture kept after the
stream read so far borrowed tables (:class:`~video_runner.extraction.jpeg_tables.TableUse`). The
caller then decodes everything again and gives only the frames after the last one it gave
(docs/decisions/0005-decode-only-what-sampling-needs.md).
"""

from __future__ import annotations

from collections import deque

from video_runner.extraction.decode_plan import PlanRefused
from video_runner.extraction.jpeg_tables import TableUse


class IntraOnlyStream:
    """Keeps every ``every_n``-th packet of an intra-only stream, checked as it is read."""

    def __init__(self, every_n: int, *, mjpeg: bool) -> None:
        if every_n < 2:  # noqa: PLR2004 - every packet kept: nothing to plan
            raise ValueError("an intra-only plan needs every_n >= 2")
        self.every_n = every_n
        #: Packets read so far (the next packet's presentation index).
        self.position = 0
        self._tables = TableUse() if mjpeg else None
        self._last_pts: int | None = None
        self._kept: deque[tuple[int, int]] = deque()

    def drops(self, pts: int | None, data: bytes | memoryview) -> bool:
        """Whether the packet just read is kept from the decoder (else it is expected out)."""
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            raise PlanRefused("pts do not increase in demux order")
        self._last_pts = pts
        if self._tables is not None:
            self._tables.add(data)
        index, self.position = self.position, self.position + 1
        if index % self.every_n:
            return True
        if self._tables is not None and not self._tables.self_contained:
            raise PlanRefused("an MJPEG picture reads tables another one left in the decoder")
        self._kept.append((index, pts))
        return False

    def index_of(self, pts: int | None) -> int:
        """The presentation index of the next decoded frame, which must have this pts."""
        if not self._kept or self._kept[0][1] != pts:
            raise PlanRefused("a frame the plan did not expect")
        return self._kept.popleft()[0]

    def all_given(self) -> bool:
        """Whether every kept packet came out of the decoder as a frame."""
        return not self._kept
