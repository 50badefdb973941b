"""The webhook sender (aiohttp): one POST, its status, or ``DependencyUnavailable``."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from video_runner.errors import DependencyUnavailable


class HttpWebhookSender:
    """Implements ``ports.WebhookSender``. Redirects are not followed: the allowlisted host is
    the only one ever called."""

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
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DependencyUnavailable(
                "webhook", f"POST {url}: {type(exc).__name__}: {exc}"
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
