"""What a YOLO ONNX export must look like before the detector runs it, checked up front.

The layout is :mod:`.onnx_yolo`'s (an Ultralytics YOLOv8 / YOLO11 detection head, or a model of
the project's Darknet converter): one ``[N, 3, H, W]`` input, a ``[N, 4 + classes, anchors]``
first output, and metadata that does not say otherwise (a non-``detect`` task, NMS inside, a
class count that disagrees with the output). Anything else is a ``ConfigurationError`` at load
time, never a wrong detection later. The metadata's ``names`` and ``imgsz`` are read here too.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    # Only a process that opens a session pays for onnxruntime (see onnx_session).
    import onnxruntime as ort

_log = logging.getLogger(__name__)

#: The input size of a dynamic-shape export whose metadata does not give ``imgsz``.
DEFAULT_SIZE = 640
#: ``cx, cy, w, h`` ahead of the class scores in every anchor's column of the output.
BOX_CHANNELS = 4
_INPUT_RANK = 4
_OUTPUT_RANK = 3
#: The input element types the detector can feed, and the NumPy type it feeds them as.
INPUT_DTYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


def _literal(raw: str | None) -> object:
    """A metadata value as a Python literal; ``None`` when absent or not a literal.

    literal_eval evaluates literals only, never code: safe on a file from a user.
    """
    if not raw:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def parse_names(raw: str | None) -> dict[int, str] | None:
    """Parse Ultralytics' ``names`` metadata (a dict or list literal); ``None`` if unusable."""
    value = _literal(raw)
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict):
        return None
    names: dict[int, str] = {}
    for key, name in value.items():
        if not isinstance(key, int) or isinstance(key, bool) or not isinstance(name, str):
            return None
        names[key] = name
    return names


def parse_imgsz(raw: str | None) -> tuple[int, int] | None:
    value = _literal(raw)
    if isinstance(value, int) and value > 0:
        return value, value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2  # noqa: PLR2004
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        return value[0], value[1]
    return None


def static_dim(dim: object) -> int | None:
    """A dimension's size if the model fixes it, else None (a symbolic name, None or -1)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def check_layout(path: Path, session: ort.InferenceSession) -> tuple[Any, Any]:
    """The session's input and first output, if they look like a YOLO detection export."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != _INPUT_RANK:
        raise ConfigurationError(
            f"{path}: expected one [N, 3, H, W] input (a YOLO detection export), got "
            f"{[(i.name, i.shape) for i in inputs]}"
        )
    model_input = inputs[0]
    if model_input.type not in INPUT_DTYPES:
        raise ConfigurationError(f"{path}: unsupported input type {model_input.type}")
    if static_dim(model_input.shape[1]) not in (None, 3):
        raise ConfigurationError(f"{path}: input must have 3 channels, got {model_input.shape}")
    output_shape = outputs[0].shape if outputs else []
    channels = static_dim(output_shape[1]) if len(output_shape) == _OUTPUT_RANK else None
    if len(output_shape) != _OUTPUT_RANK or (channels is not None and channels <= BOX_CHANNELS):
        raise ConfigurationError(
            f"{path}: expected a [N, 4 + classes, anchors] output (YOLOv8/YOLO11 head, "
            f"exported without nms), got {output_shape}"
        )
    return model_input, outputs[0]


def check_metadata(path: Path, metadata: Mapping[str, str], channels: int | None) -> None:
    """Refuse the Ultralytics exports whose output only looks like the one we parse."""
    task = metadata.get("task")
    if task is not None and task != "detect":
        raise ConfigurationError(f"{path}: a {task!r} model; only 'detect' models are supported")
    try:
        args = ast.literal_eval(metadata.get("args", "{}"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        args = {}
    if (isinstance(args, dict) and args.get("nms") is True) or metadata.get("end2end") == "True":
        raise ConfigurationError(
            f"{path}: exported with NMS inside (nms=True or an end-to-end head); "
            "export again without nms"
        )
    names = parse_names(metadata.get("names"))
    # [N, 300, 6] end-to-end outputs also pass the shape check; the class count gives them away.
    if names and channels is not None and channels != BOX_CHANNELS + len(names):
        raise ConfigurationError(
            f"{path}: output has {channels} channels but the model names {len(names)} classes; "
            "expected 4 + classes (YOLOv8/YOLO11 detection head)"
        )


def resolve_names(
    path: Path,
    given: Sequence[str] | Mapping[int, str] | None,
    metadata: Mapping[str, str],
) -> dict[int, str]:
    if isinstance(given, Mapping):
        return dict(given)
    if given is not None:
        return dict(enumerate(given))
    names = parse_names(metadata.get("names"))
    if names is None and "names" in metadata:
        _log.warning("%s: unreadable 'names' metadata; classes will be named class_<i>", path)
    return names or {}
