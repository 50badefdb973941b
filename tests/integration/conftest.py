"""Integration tests talk to the real local stack (`make stack-up`); each test gets its own
topics, groups, buckets and database, so tests never see each other's messages."""

from __future__ import annotations

import pytest

from support.stack import isolated_settings
from video_runner.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return isolated_settings(tmp_path / "work")
