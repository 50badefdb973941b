"""The webhook sender (aiohttp): one POST, its status, or ``DependencyUnavailable``."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from video_runner.errors import DependencyUnavailable

#: The most of a reply's body ever read: only its status matters, and a receiver may answer
#: with gigabytes.
REPLY_READ_BYTES = 4096


class HttpWebhookSender:
    """Implements ``ports.WebhookSender``. Redirects are not followed: the allowlisted host is
    the only one ever called. Of the reply, the status is kept and at most ``REPLY_READ_BYTES``
    of the body are read; the connection is then closed, not drained."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._session is None or self._session.closed:
            # Made on first use, inside the event loop that runs the deliveries.
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                await response.content.read(REPLY_READ_BYTES)
                response.close()  # the rest of the body is never read
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DependencyUnavailable(
                "webhook", f"POST {url}: {type(exc).__name__}: {exc}"
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
