"""A user's YOLO model exported to ONNX by Ultralytics (YOLOv8 / YOLO11 detection head).

The layout this expects is what ``yolo export model=yolo11n.pt format=onnx`` writes:

* one input (``images``), float32 ``[N, 3, H, W]``, RGB scaled to 0..1, letterboxed to H x W
  (usually 640) with grey (114) borders;
* first output ``[N, 4 + nc, anchors]``: per anchor ``cx, cy, w, h`` in input pixels, then one
  score per class, already sigmoid-ed; no NMS inside (exports with ``nms=True`` and end-to-end
  heads such as YOLOv10's have another output; the metadata and class count give them away, and
  they are refused, as are segmentation, pose and other non-``detect`` tasks);
* custom metadata ``names`` (a Python dict literal, ``"{0: 'person', 1: 'bicycle'}"``) and
  ``imgsz``.

Post-processing follows Ultralytics' defaults: each anchor takes its best class, anchors at or
below the confidence threshold go, then NMS per class, then boxes are un-letterboxed and clipped
(and dropped if nothing of them is left in the frame).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import onnxruntime as ort

from video_runner.adapters.detectors.digest import file_sha256
from video_runner.adapters.detectors.letterbox import Letterbox, letterbox
from video_runner.domain.detections import Detection
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy.typing as npt

    from video_runner.ports import Image

_log = logging.getLogger(__name__)

_DEFAULT_SIZE = 640
_CPU = "CPUExecutionProvider"
_BOX_CHANNELS = 4
_INPUT_RANK = 4
_OUTPUT_RANK = 3
_DTYPES: dict[str, type[np.floating[Any]]] = {
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


def _parse_imgsz(raw: str | None) -> tuple[int, int] | None:
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


def _static(dim: object) -> int | None:
    """A dimension's size if the model fixes it, else None (a symbolic name, None or -1)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """``wanted`` in order, less those this onnxruntime lacks (logged), CPU always last."""
    chosen = []
    for name in wanted:
        if name == _CPU:
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
    return [*chosen, _CPU]


def _open_session(
    path: Path, threads: int | None, providers: Sequence[str]
) -> ort.InferenceSession:
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


def _check_layout(path: Path, session: ort.InferenceSession) -> tuple[Any, Any]:
    """The session's input and first output, if they look like a YOLO detection export."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != _INPUT_RANK:
        raise ConfigurationError(
            f"{path}: expected one [N, 3, H, W] input (a YOLO detection export), got "
            f"{[(i.name, i.shape) for i in inputs]}"
        )
    model_input = inputs[0]
    if model_input.type not in _DTYPES:
        raise ConfigurationError(f"{path}: unsupported input type {model_input.type}")
    if _static(model_input.shape[1]) not in (None, 3):
        raise ConfigurationError(f"{path}: input must have 3 channels, got {model_input.shape}")
    output_shape = outputs[0].shape if outputs else []
    channels = _static(output_shape[1]) if len(output_shape) == _OUTPUT_RANK else None
    if len(output_shape) != _OUTPUT_RANK or (channels is not None and channels <= _BOX_CHANNELS):
        raise ConfigurationError(
            f"{path}: expected a [N, 4 + classes, anchors] output (YOLOv8/YOLO11 head, "
            f"exported without nms), got {output_shape}"
        )
    return model_input, outputs[0]


def _check_metadata(path: Path, metadata: Mapping[str, str], channels: int | None) -> None:
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
    if names and channels is not None and channels != _BOX_CHANNELS + len(names):
        raise ConfigurationError(
            f"{path}: output has {channels} channels but the model names {len(names)} classes; "
            "expected 4 + classes (YOLOv8/YOLO11 detection head)"
        )


def _resolve_names(
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


class OnnxYoloDetector:
    """Runs an Ultralytics-exported YOLO ``.onnx`` with onnxruntime on the CPU.

    Args:
        model_path: the ``.onnx`` file.
        confidence: keep detections whose best class score is above this.
        iou: overlap (IoU) above which the weaker of two boxes of the same class is dropped.
        class_names: names by class index; default the model's ``names`` metadata, and
            ``class_<i>`` for any index neither provides.
        max_detections: keep at most this many per image, the most confident.
        threads: onnxruntime intra-op threads; ``None`` or 0 lets it use every core.
        providers: execution providers by preference; those this onnxruntime lacks are
            skipped with a warning, and the CPU provider is always the last resort.

    Raises:
        ConfigurationError: the file is missing, is not an ONNX model onnxruntime can load,
            or does not have the input and output layout above.
    """

    def __init__(
        self,
        model_path: str | Path,
        confidence: float = 0.25,
        iou: float = 0.45,
        class_names: Sequence[str] | Mapping[int, str] | None = None,
        *,
        max_detections: int = 300,
        threads: int | None = None,
        providers: Sequence[str] = (_CPU,),
    ) -> None:
        if not 0.0 <= confidence < 1.0:
            raise ConfigurationError(f"ONNX confidence must be in [0, 1), got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ConfigurationError(f"ONNX IoU must be in (0, 1], got {iou}")
        if max_detections < 1:
            raise ConfigurationError(f"max_detections must be >= 1, got {max_detections}")
        path = Path(model_path)
        if not path.is_file():
            raise ConfigurationError(f"ONNX model file not found: {path}")
        self._path = path
        self._confidence = confidence
        self._iou = iou
        self._max_detections = max_detections

        self._session = _open_session(path, threads, providers)
        model_input, model_output = _check_layout(path, self._session)
        self._input_name: str = model_input.name
        self._output_name: str = model_output.name
        self._dtype = _DTYPES[model_input.type]
        self._batch = _static(model_input.shape[0])

        metadata: Mapping[str, str] = self._session.get_modelmeta().custom_metadata_map
        height, width = _static(model_input.shape[2]), _static(model_input.shape[3])
        if height is None or width is None:
            # A dynamic-shape export: the size it was trained for is the sensible one.
            height, width = _parse_imgsz(metadata.get("imgsz")) or (_DEFAULT_SIZE, _DEFAULT_SIZE)
        self._size = (height, width)
        _check_metadata(path, metadata, _static(model_output.shape[1]))
        self._names = _resolve_names(path, class_names, metadata)
        # A converted model names itself; a user's export is named by its file, and versioned
        # by its content, so a retrained file of the same name is told apart in the results.
        self._model_name = metadata.get("model_name") or f"onnx-yolo:{path.name}"
        self._model_version = metadata.get("model_version") or file_sha256(path)[:12]

    @property
    def name(self) -> str:
        """The model and its version: ``yolov4-tiny@<version>`` for a converted model, whose
        file states it, ``onnx-yolo:<file>@<sha256 prefix>`` for a user's export."""
        return f"{self._model_name}@{self._model_version}"

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, in order."""
        return list(self._session.get_providers())

    @property
    def input_size(self) -> tuple[int, int]:
        """The (height, width) frames are letterboxed to."""
        return self._size

    @property
    def class_names(self) -> Mapping[int, str]:
        return dict(self._names)

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Return the objects found in each image (BGR uint8 HxWx3), boxes in its own pixels."""
        if not images:
            return []
        prepared = [self._prepare(image) for image in images]
        tensors = np.stack([tensor for tensor, _ in prepared])
        # A dynamic batch runs everything at once; a fixed one (usually 1) runs in chunks of
        # its size, the last chunk padded with zeros.
        step = self._batch or len(images)
        outputs: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(images), step):
            chunk = tensors[start : start + step]
            missing = step - len(chunk)
            if missing:
                chunk = np.concatenate([chunk, np.zeros((missing, *chunk.shape[1:]), chunk.dtype)])
            (result,) = self._session.run([self._output_name], {self._input_name: chunk})
            outputs.extend(np.asarray(result, dtype=np.float32)[: step - missing])
        return [
            self._postprocess(output, box)
            for output, (_, box) in zip(outputs, prepared, strict=True)
        ]

    def _prepare(self, image: Image) -> tuple[npt.NDArray[np.floating[Any]], Letterbox]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:  # noqa: PLR2004
            raise ValueError(
                f"expected a BGR uint8 HxWx3 image, got {image.dtype} {tuple(image.shape)}"
            )
        padded, box = letterbox(image, self._size)
        rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
        tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(self._dtype) / 255
        return tensor, box

    def _postprocess(self, output: npt.NDArray[np.float32], box: Letterbox) -> list[Detection]:
        if output.ndim != 2 or output.shape[0] <= _BOX_CHANNELS:  # noqa: PLR2004
            raise ValueError(f"unexpected YOLO output shape {output.shape}")
        predictions = output.T  # anchors x (4 + classes)
        scores = predictions[:, _BOX_CHANNELS:]
        class_ids = scores.argmax(axis=1)
        confs = scores[np.arange(len(scores)), class_ids]
        keep = confs > self._confidence
        if not keep.any():
            return []
        cx, cy, w, h = predictions[keep, :_BOX_CHANNELS].astype(np.float64).T
        confs, class_ids = confs[keep], class_ids[keep]
        # NMS in input pixels, before clipping, as Ultralytics does: IoU does not change under
        # the letterbox's scale and shift, but it does under clipping.
        indices = cv2.dnn.NMSBoxesBatched(
            [
                (float(a), float(b), float(c), float(d))
                for a, b, c, d in zip(cx - w / 2, cy - h / 2, w, h, strict=True)
            ],
            [float(c) for c in confs],
            [int(c) for c in class_ids],
            self._confidence,
            self._iou,
        )
        x1 = np.clip((cx - w / 2 - box.left) / box.gain, 0, box.width)
        y1 = np.clip((cy - h / 2 - box.top) / box.gain, 0, box.height)
        x2 = np.clip((cx + w / 2 - box.left) / box.gain, 0, box.width)
        y2 = np.clip((cy + h / 2 - box.top) / box.gain, 0, box.height)
        # Most confident first; ties by anchor index, so the output never depends on NMS order.
        # A box left with no area lay wholly in the letterbox's grey bands: nothing is there.
        order = sorted(
            (int(i) for i in np.ravel(indices) if x2[i] > x1[i] and y2[i] > y1[i]),
            key=lambda i: (-float(confs[i]), i),
        )
        return [
            Detection(
                cls=self._names.get(int(class_ids[i]), f"class_{int(class_ids[i])}"),
                box=(float(x1[i]), float(y1[i]), float(x2[i]), float(y2[i])),
                conf=float(confs[i]),
            )
            for i in order[: self._max_detections]
        ]
