"""Which Kafka offset may be committed: only ever the contiguous finished prefix."""

from __future__ import annotations

from video_runner.domain.offsets import PartitionProgress


def _started(*offsets: int) -> PartitionProgress:
    progress = PartitionProgress()
    for offset in offsets:
        progress.start(offset)
    return progress


def test_finishing_the_lowest_offset_commits_past_it():
    """With 0, 1, 2 in work, finishing 0 makes 1 the next offset to commit."""
    progress = _started(0, 1, 2)
    assert progress.finish(0) == 1
    assert progress.in_work == 2


def test_a_later_offset_finished_first_is_not_committed_until_the_earlier_one_is():
    """Finishing 2 while 1 is in work commits nothing; finishing 1 then commits past both."""
    progress = _started(0, 1, 2)
    assert progress.finish(0) == 1
    assert progress.finish(2) is None
    assert progress.finish(1) == 3
    assert progress.in_work == 0


def test_offsets_finished_in_reverse_order_commit_all_at_once_when_the_first_finishes():
    """4, 3, 2, 1 finish first and commit nothing; finishing 0 commits past 4."""
    progress = _started(0, 1, 2, 3, 4)
    for offset in (4, 3, 2, 1):
        assert progress.finish(offset) is None
    assert progress.finish(0) == 5


def test_gaps_in_offsets_do_not_block_the_commit():
    """Offsets 10, 12, 15 (compaction or transaction markers between them) commit as a run."""
    progress = _started(10, 12, 15)
    assert progress.finish(12) is None
    assert progress.finish(10) == 13
    assert progress.finish(15) == 16


def test_the_commit_point_never_passes_work_started_later_below_it():
    """A message polled after a commit keeps later finished offsets uncommitted."""
    progress = _started(0)
    assert progress.finish(0) == 1
    progress.start(1)
    progress.start(2)
    assert progress.finish(2) is None
    progress.start(3)
    assert progress.finish(1) == 3
    assert progress.in_work == 1
    assert progress.finish(3) == 4


def test_a_single_offset_commits_past_itself():
    """The only message in work, once finished, is committed as offset + 1."""
    progress = _started(41)
    assert progress.in_work == 1
    assert progress.finish(41) == 42
    assert progress.in_work == 0
