"""Untrusted text as pages show it: control and bidirectional-override characters made visible.

A class name or a tag may hold U+202E (right-to-left override), zero-width characters or ANSI
escapes; shown raw they reorder or hide what a person reads next to them. Each one becomes its
``\\u`` escape, so what is shown is what is there.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

#: Control characters (Cc) and format characters (Cf: bidi overrides, zero-width joiners...).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})


def visible(text: object) -> str:
    """``text`` with every control or format character replaced by its ``\\uXXXX`` escape."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in _HIDDEN_CATEGORIES else ch
        for ch in value
    )


def without_paths(message: str, roots: Iterable[Path]) -> str:
    """A failure message without the runner's own directories: FFmpeg names the work file by
    its full path, and where the runner keeps its files is nobody else's business."""
    for root in roots:
        for form in {str(root), str(root.resolve())}:
            message = message.replace(form.rstrip("/") + "/", "")
    return message
