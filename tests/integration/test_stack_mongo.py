"""The local MongoDB-wire database (FerretDB on SQLite, tools/stack) does what video-runner needs.

Runs against the real server started by `tools/stack/stack.sh up`; the connection string
comes from MONGO_URI (see .stack/env). Uses pymongo's async API.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration


def _uri() -> str:
    value = os.environ.get("MONGO_URI")
    if not value:
        pytest.fail(
            "MONGO_URI is not set: run `bash tools/stack/stack.sh up` and source .stack/env"
        )
    return value


@pytest_asyncio.fixture
async def db() -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A fresh database, dropped afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        _uri(), serverSelectionTimeoutMS=10_000
    )
    name = f"it_stack_{uuid.uuid4().hex}"
    try:
        yield client[name]
        await client.drop_database(name)
    finally:
        await client.close()


async def test_an_inserted_document_can_be_found_by_its_fields(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """insert_one stores the document; find_one returns it with the generated _id."""
    result = await db.jobs.insert_one({"video": "a.mp4", "state": "new", "frames": 3})
    found = await db.jobs.find_one({"video": "a.mp4"})
    assert found is not None
    assert found["_id"] == result.inserted_id
    assert (found["state"], found["frames"]) == ("new", 3)


async def test_a_unique_compound_index_rejects_a_duplicate_pair(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """With a unique index on (video, frame), a second equal pair raises DuplicateKeyError."""
    await db.frames.create_index([("video", ASCENDING), ("frame", ASCENDING)], unique=True)
    await db.frames.insert_one({"video": "a.mp4", "frame": 1})
    await db.frames.insert_one({"video": "a.mp4", "frame": 2})  # other pair: fine
    await db.frames.insert_one({"video": "b.mp4", "frame": 1})  # other pair: fine
    with pytest.raises(DuplicateKeyError):
        await db.frames.insert_one({"video": "a.mp4", "frame": 1})
    assert await db.frames.count_documents({}) == 3


async def test_a_conditional_find_one_and_update_matches_only_once(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """Claiming a job with a state condition succeeds once; a second claim finds nothing."""
    await db.jobs.insert_one({"_id": "job-1", "state": "new"})

    claimed = await db.jobs.find_one_and_update(
        {"_id": "job-1", "state": "new"},
        {"$set": {"state": "running", "worker": "w1"}},
        return_document=ReturnDocument.AFTER,
    )
    assert claimed == {"_id": "job-1", "state": "running", "worker": "w1"}

    again = await db.jobs.find_one_and_update(
        {"_id": "job-1", "state": "new"}, {"$set": {"state": "running", "worker": "w2"}}
    )
    assert again is None
    assert await db.jobs.find_one({"_id": "job-1"}) == {
        "_id": "job-1",
        "state": "running",
        "worker": "w1",
    }


async def test_an_upsert_with_set_on_insert_does_not_overwrite_on_the_second_upsert(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """$setOnInsert fields are written by the inserting upsert only; $set fields by both."""
    first = await db.videos.update_one(
        {"_id": "v1"},
        {"$setOnInsert": {"created_by": "first", "attempts": 0}, "$set": {"seen_by": "first"}},
        upsert=True,
    )
    assert first.upserted_id == "v1"

    second = await db.videos.update_one(
        {"_id": "v1"},
        {"$setOnInsert": {"created_by": "second", "attempts": 99}, "$set": {"seen_by": "second"}},
        upsert=True,
    )
    assert second.upserted_id is None
    assert second.matched_count == 1

    doc = await db.videos.find_one({"_id": "v1"})
    assert doc == {"_id": "v1", "created_by": "first", "attempts": 0, "seen_by": "second"}


async def test_a_lookup_of_many_ids_finds_exactly_those_and_uses_the_id_index(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    """`{_id: {$in: [...]}}` (how the merge reads a page of results) returns exactly the
    documents named, missing ones absent, and the server answers it from the `_id` index
    (the project's FerretDB patch; an unpatched one scans the whole collection)."""
    await db.results.insert_many([{"_id": f"ev/{f}", "frame_id": f} for f in range(0, 500, 5)])
    wanted = [f"ev/{f}" for f in (0, 5, 250, 495)] + ["ev/1", "other/0"]
    found = await db.results.find({"_id": {"$in": wanted}}).to_list(None)
    assert sorted(d["frame_id"] for d in found) == [0, 5, 250, 495]
    plan = await db.command("explain", {"find": "results", "filter": {"_id": {"$in": wanted}}})
    assert plan["filterPushdown"] is True
    assert "USING INDEX" in " ".join(plan["queryPlanner"]["Plan"])
    # Values of other types are filtered by the server's handler alone, still exactly.
    mixed = await db.results.find({"_id": {"$in": ["ev/10", 10]}}).to_list(None)
    assert [d["frame_id"] for d in mixed] == [10]
