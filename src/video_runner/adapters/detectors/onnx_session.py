"""The onnxruntime session a detector runs on: its execution providers and its threads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    import onnxruntime as ort

_log = logging.getLogger(__name__)

#: Every onnxruntime has it: the provider of last resort.
CPU_PROVIDER = "CPUExecutionProvider"


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """``wanted`` in order, less those this onnxruntime lacks (logged), CPU always last."""
    chosen = []
    for name in wanted:
        if name == CPU_PROVIDER:
            continue
        if name in available:
            chosen.append(name)
        else:
            _log.warning(
                "ONNX execution provider %s is not available in this onnxruntime (it has %s); "
                "falling back to the CPU",
                name,
                ", ".join(available),
            )
    return [*chosen, CPU_PROVIDER]


def open_session(path: Path, threads: int | None, providers: Sequence[str]) -> ort.InferenceSession:
    # Imported here: every process builds through the composition root, and only the one that
    # runs a model should load onnxruntime (~40 MB resident).
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Warnings and up: onnxruntime's info level prints a line per graph optimisation.
    options.log_severity_level = 2
    if threads:
        options.intra_op_num_threads = threads
    # onnxruntime's pool threads spin between runs by default, burning the cores the event loop,
    # JPEG decoding and co-located services need while the worker waits for the next batch.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    chosen = choose_providers(providers, ort.get_available_providers())
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own, unexported exception types
        raise ConfigurationError(f"cannot load ONNX model {path}: {exc}") from exc
