"""An exception that reached a retry loop unclassified, put through the table it belongs to.

The adapters classify at their boundary, so what a loop catches is normally in the tree already.
What escaped them (a library's exception raised outside an adapter call) and what no adapter
sees (the operating system's: a full disk, no memory) is classified here, so the retry policy
decides on it like on everything else.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from bson.errors import InvalidDocument
from pymongo.errors import PyMongoError

from video_runner.adapters.error_classes.kafka import classify_kafka
from video_runner.adapters.error_classes.local import classify_local
from video_runner.adapters.error_classes.mongo import classify_mongo
from video_runner.adapters.error_classes.s3 import classify_s3
from video_runner.errors import VideoRunnerError


def classify_escaped(exc: BaseException) -> BaseException:
    """What ``exc`` means for the work at hand; ``exc`` itself when no table knows it.

    An S3 failure is read as one on storage of ours (``source=False``): without the call's
    context, a missing object is waited out rather than blamed on the message.
    """
    if isinstance(exc, VideoRunnerError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, BotoCoreError | ClientError | Boto3Error):
        return classify_s3(exc)
    if isinstance(exc, KafkaError):
        return classify_kafka(exc)
    if isinstance(exc, PyMongoError | InvalidDocument):
        return classify_mongo(exc)
    return classify_local(exc)
