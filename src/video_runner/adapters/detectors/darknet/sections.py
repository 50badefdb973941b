"""Darknet's cfg text: its sections in order, and one section's options read with darknet's
defaults and a clear error on a bad value."""

from __future__ import annotations

from video_runner.errors import ConfigurationError

#: Activations darknet names in a cfg and the graph builder knows.
ACTIVATIONS = frozenset({"leaky", "linear", "logistic", "relu", "mish"})


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """The cfg's sections in order, each with its ``key=value`` options (comments dropped)."""
    found: list[tuple[str, dict[str, str]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            found.append((line[1:-1].strip().lower(), {}))
            continue
        key, sep, value = line.partition("=")
        if not sep or not found:
            raise ConfigurationError(f"darknet cfg line {number}: expected key=value, got {raw!r}")
        found[-1][1][key.strip().lower()] = value.strip()
    return found


class SectionOptions:
    """One section's options, read with darknet's defaults and a clear error on bad values."""

    def __init__(self, index: int, kind: str, values: dict[str, str]) -> None:
        self._where = f"darknet cfg layer {index} [{kind}]"
        self._values = values

    def integer(self, key: str, default: int | None = None) -> int:
        raw = self._values.get(key)
        if raw is None:
            if default is None:
                raise ConfigurationError(f"{self._where}: '{key}' is required")
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not an integer: {raw!r}") from None

    def number(self, key: str, default: float) -> float:
        raw = self._values.get(key)
        try:
            return default if raw is None else float(raw)
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a number: {raw!r}") from None

    def integers(self, key: str) -> tuple[int, ...]:
        raw = self._values.get(key, "")
        try:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a list: {raw!r}") from None

    def numbers(self, key: str) -> tuple[float, ...]:
        raw = self._values.get(key, "")
        try:
            return tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a list: {raw!r}") from None

    def activation(self) -> str:
        name = self._values.get("activation", "logistic").lower()
        if name not in ACTIVATIONS:
            raise ConfigurationError(f"{self._where}: unsupported activation {name!r}")
        return name

    def fail(self, why: str) -> ConfigurationError:
        return ConfigurationError(f"{self._where}: {why}")
