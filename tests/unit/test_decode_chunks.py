"""Where a video splits into chunks that decode independently (pure: no video involved)."""

from __future__ import annotations

import numpy as np

from video_runner.extraction.bitstream import Picture
from video_runner.extraction.decode_chunks import group_chunks, independent_starts, worth_splitting
from video_runner.extraction.decode_plan import PacketInfo, plan_decoding


def _picture(*, idr: bool = False, disposable: bool = False) -> Picture:
    return Picture(
        has_picture=True, disposable=disposable, idr=idr, resets_output=False, temporal_id=0
    )


def _gops(count: int, size: int) -> list[PacketInfo]:
    """``count`` closed GOPs of I P B b in decoding order: pts 0 3 2 1 within each."""
    packets = []
    for gop in range(count):
        base = gop * size
        packets.append(PacketInfo(base, _picture(idr=True)))
        packets.extend(
            PacketInfo(base + offset, _picture(disposable=offset % 2 == 0))
            for offset in range(1, size)
        )
    return packets


def test_a_chunk_starts_only_at_a_fresh_picture_that_nothing_before_is_shown_after():
    """An IDR whose predecessor is shown later (an open GOP's leading picture) is no start."""
    fresh = np.array([True, False, True, False, True, False])
    pts = np.array([0, 3, 2, 1, 4, 5])  # pts 3, before the IDR at 2, is shown after pts 2 and 1
    assert independent_starts(fresh, pts).tolist() == [0, 4]


def test_the_first_packet_always_starts_a_chunk_and_an_empty_stream_has_none():
    assert independent_starts(np.array([False, False]), np.array([1, 0])).tolist() == [0]
    assert independent_starts(np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)).size == 0


def test_runs_are_grouped_until_each_chunk_reaches_the_target_and_cover_every_packet():
    """Target for 100 packets: at least 12 (100 // 8); the last chunk takes what is left."""
    starts = np.arange(0, 100, 5)
    chunks = group_chunks(starts, 100)
    assert chunks[0] == (0, 15)
    assert all(end - start >= 12 for start, end in chunks[:-1])
    assert [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]]
    assert chunks[-1][1] == 100


def test_a_long_stream_keeps_its_chunks_small_enough_to_balance():
    """Were every packet a start, 10,000 packets would still make chunks of 120."""
    chunks = group_chunks(np.arange(10_000), 10_000)
    assert {end - start for start, end in chunks} == {120, 10_000 % 120}


def test_splitting_needs_two_chunks_and_none_over_half_the_packets():
    assert not worth_splitting(((0, 100),))
    assert not worth_splitting(((0, 60), (60, 100)))
    assert worth_splitting(((0, 50), (50, 100)))
    assert worth_splitting(((0, 30), (30, 60), (60, 100)))


def test_a_plan_of_closed_gops_splits_at_each_idr_and_expects_each_chunks_decoded_frames():
    packets = _gops(4, 12)
    plan = plan_decoding(packets, every_n=4)
    assert plan.chunks == ((0, 12), (12, 24), (24, 36), (36, 48))
    for chunk in plan.chunks:
        expected = plan.expected_in(chunk)
        start, end = chunk
        kept = [p.pts for i, p in enumerate(packets[start:end]) if not plan.drop[start + i]]
        assert expected.tolist() == sorted(kept)
    assert sum(len(plan.expected_in(c)) for c in plan.chunks) == len(plan.decoded_pts)


def test_a_stream_with_nothing_to_drop_still_gets_a_plan_when_it_splits():
    """Every frame selected from a stream of four GOPs: nothing is dropped, yet lanes can
    share it."""
    packets = [
        PacketInfo(gop * 12 + i, _picture(idr=i == 0)) for gop in range(4) for i in range(12)
    ]
    plan = plan_decoding(packets, selected=frozenset(range(48)))
    assert plan.dropped == 0
    assert len(plan.chunks) == 4


def test_one_long_gop_is_not_split():
    plan = plan_decoding(_gops(1, 48), every_n=4)
    assert plan.chunks == ()


def test_an_intra_only_stream_is_not_split():
    """Its one decoder thread is balanced by the JPEG work already; lanes would reread it."""
    plan = plan_decoding([PacketInfo(pts, None) for pts in range(48)], every_n=4)
    assert plan.chunks == ()


def test_each_gop_is_decoded_only_up_to_its_last_selected_picture():
    """Four closed GOPs of 12 pictures, all references: every 5th frame keeps 0, 5, 10 of the
    first GOP, so its 11th picture goes; in the second (12-23), 15 and 20, so 21-23 go; and a
    plan by time keeping frames 1 and 30 decodes GOP 0 to 1, GOP 2 to 30, and nothing else."""
    packets = [
        PacketInfo(gop * 12 + i, _picture(idr=i == 0)) for gop in range(4) for i in range(12)
    ]
    every_5th = plan_decoding(packets, every_n=5)
    dropped = {i for i in range(48) if every_5th.drop[i]}
    assert dropped == {11, 21, 22, 23, 46, 47}
    by_time = plan_decoding(packets, selected=frozenset({1, 30}))
    assert [i for i in range(48) if not by_time.drop[i]] == [0, 1, *range(24, 31)]
