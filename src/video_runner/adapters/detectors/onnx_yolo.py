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

The layout and the metadata are checked when the model loads (:mod:`.onnx_layout`); the
onnxruntime session and its execution providers are set up by :mod:`.onnx_session`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from video_runner.adapters.detectors.digest import file_sha256
from video_runner.adapters.detectors.letterbox import Letterbox, letterbox
from video_runner.adapters.detectors.onnx_layout import (
    BOX_CHANNELS,
    DEFAULT_SIZE,
    INPUT_DTYPES,
    check_layout,
    check_metadata,
    parse_imgsz,
    resolve_names,
    static_dim,
)
from video_runner.adapters.detectors.onnx_session import CPU_PROVIDER
from video_runner.adapters.detectors.onnx_session import open_session as open_onnx_session
from video_runner.domain.detections import Detection
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy.typing as npt

    from video_runner.ports import Image


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
        open_session: makes the onnxruntime session from (path, threads, providers); a test
            passes one that wraps the real session to watch its calls.

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
        providers: Sequence[str] = (CPU_PROVIDER,),
        open_session: Callable[[Path, int | None, Sequence[str]], Any] = open_onnx_session,
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

        self._session = open_session(path, threads, providers)
        model_input, model_output = check_layout(path, self._session)
        self._input_name: str = model_input.name
        self._output_name: str = model_output.name
        self._dtype = INPUT_DTYPES[model_input.type]
        self._batch = static_dim(model_input.shape[0])

        metadata: Mapping[str, str] = self._session.get_modelmeta().custom_metadata_map
        height, width = static_dim(model_input.shape[2]), static_dim(model_input.shape[3])
        if height is None or width is None:
            # A dynamic-shape export: the size it was trained for is the sensible one.
            height, width = parse_imgsz(metadata.get("imgsz")) or (DEFAULT_SIZE, DEFAULT_SIZE)
        self._size = (height, width)
        check_metadata(path, metadata, static_dim(model_output.shape[1]))
        self._names = resolve_names(path, class_names, metadata)
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
        if output.ndim != 2 or output.shape[0] <= BOX_CHANNELS:  # noqa: PLR2004
            raise ValueError(f"unexpected YOLO output shape {output.shape}")
        predictions = output.T  # anchors x (4 + classes)
        scores = predictions[:, BOX_CHANNELS:]
        class_ids = scores.argmax(axis=1)
        confs = scores[np.arange(len(scores)), class_ids]
        keep = confs > self._confidence
        if not keep.any():
            return []
        cx, cy, w, h = predictions[keep, :BOX_CHANNELS].astype(np.float64).T
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
