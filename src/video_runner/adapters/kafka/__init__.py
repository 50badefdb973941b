"""Kafka adapter (aiokafka): an acknowledged JSON publisher and a consumer loop that loses nothing.

``connection`` says how to reach the cluster, ``admin`` creates topics and reads group offsets,
``producer`` publishes, ``consumer`` is the aiokafka shell of a consumer loop, ``dispatch`` its
core (contiguous-prefix commits, revocation, drain; decision 0003) and ``retrying`` the handler
under the retry policy, which both run without a broker. The names the rest of the project
uses are re-exported here.
"""

from video_runner.adapters.kafka.admin import GroupOffsets, ensure_topics
from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.adapters.kafka.consumer import ConsumerLoop
from video_runner.adapters.kafka.dispatch import Dispatcher, DispatchPolicy
from video_runner.adapters.kafka.loop_stats import LoopStats
from video_runner.adapters.kafka.notice_log import KafkaNoticeFeed, KafkaNoticeLog
from video_runner.adapters.kafka.producer import KafkaPublisher
from video_runner.adapters.kafka.protocols import BatchHandler, RecordHandler

__all__ = [
    "BatchHandler",
    "ConsumerLoop",
    "DispatchPolicy",
    "Dispatcher",
    "GroupOffsets",
    "KafkaConnection",
    "KafkaNoticeFeed",
    "KafkaNoticeLog",
    "KafkaPublisher",
    "LoopStats",
    "RecordHandler",
    "ensure_topics",
]
