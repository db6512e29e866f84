"""Query parameters of API requests, checked: every value bounded, every fault one line naming the field."""

from __future__ import annotations

from collections.abc import Mapping

from attnlab.explorer.discovery import ExplorerError

MAX_TEXT = 300  # characters of any typed text


class Params:
    """A request's query parameters with typed, bounded getters that raise ExplorerError(400)."""

    def __init__(self, values: Mapping[str, str]):
        self.values = values

    def has(self, name: str) -> bool:
        return name in self.values

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An int in [low, high]; absent: default."""
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ExplorerError(400, f"{name}: must be an integer, got {raw[:40]!r}") from None
        if not low <= value <= high:
            raise ExplorerError(400, f"{name}: must be in [{low}, {high}], got {value}")
        return value

    def text(self, name: str, *, limit: int = MAX_TEXT) -> str | None:
        """Stripped text of at most `limit` characters, not empty; absent: None."""
        raw = self.values.get(name)
        if raw is None:
            return None
        value = raw.strip()
        if not value:
            raise ExplorerError(400, f"{name}: empty")
        if len(value) > limit:
            raise ExplorerError(400, f"{name}: at most {limit} characters, got {len(value)}")
        if any(ord(c) < 32 and c not in "\t" for c in value):
            raise ExplorerError(400, f"{name}: control characters are not allowed")
        return value
