"""A small client of Toxiproxy's HTTP API (the stack's ``STACK_TOXIPROXY=1``).

The stack creates one proxy per server (``s3``, ``mongo``, ``kafka``, ``kafka-2``, ``kafka-3``);
a case adds toxics to them (latency, bandwidth, reset_peer, limit_data, timeout) and removes
them again. :meth:`Toxiproxy.reset` (enable every proxy, drop every toxic) ends every case.
See docs/decisions/0015-fault-proxy.md for why a client of our own.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Literal

Stream = Literal["upstream", "downstream"]


class Toxiproxy:
    def __init__(self, url: str | None = None) -> None:
        found = url or os.environ.get("TOXIPROXY_URL")
        if not found:
            raise RuntimeError(
                "TOXIPROXY_URL is not set: the network faults need the stack with a fault proxy"
                " (`make test-faults`, or STACK_TOXIPROXY=1 bash tools/stack/stack.sh up)"
            )
        if not found.startswith("http://"):
            raise RuntimeError(f"TOXIPROXY_URL must be an http:// URL, not {found!r}")
        self.url = found.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - an http:// URL, checked above
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"toxiproxy {method} {path}: {error.code} {detail}") from error
        return json.loads(text) if text.strip() else None

    def proxies(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", "/proxies")
        return answer

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        self._call("POST", "/reset")

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """A disabled proxy refuses connections and closes the open ones: a cut link."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    @contextlib.contextmanager
    def cut(self, proxies: list[str]) -> Iterator[None]:
        """``proxies`` disabled while the block runs."""
        try:
            for proxy in proxies:
                self.set_enabled(proxy, False)
            yield
        finally:
            for proxy in proxies:
                self.set_enabled(proxy, True)

    def add(
        self,
        proxy: str,
        kind: str,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> str:
        """Add a toxic to ``proxy``; returns its name (to :meth:`remove` it by)."""
        name = f"{kind}-{stream}"
        body = {
            "name": name,
            "type": kind,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call("POST", f"/proxies/{proxy}/toxics", body)
        return name

    def remove(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self._call("GET", f"/proxies/{proxy}/toxics")
        return answer

    @contextlib.contextmanager
    def toxic(
        self,
        proxies: list[str],
        kind: str,
        stream: Stream = "downstream",
        **attributes: int,
    ) -> Iterator[None]:
        """The same toxic on every proxy of ``proxies`` while the block runs."""
        added: list[tuple[str, str]] = []
        try:
            for proxy in proxies:  # one at a time: those added are removed if one fails
                added.append((proxy, self.add(proxy, kind, stream, **attributes)))  # noqa: PERF401
            yield
        finally:
            for proxy, name in added:
                with contextlib.suppress(RuntimeError):
                    self.remove(proxy, name)
