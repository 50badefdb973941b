"""The project's own Darknet-to-ONNX converter (cfg + weights -> one ONNX detection model).

:func:`convert` gives a model with the layout ``OnnxYoloDetector`` reads (see ``graph``),
with the metadata it looks for: ``names``, ``imgsz``, ``task``, and the model's name and
version for the results. ``video-runner models convert`` runs it on a user's own files;
``video-runner models install`` on the bundled YOLOv4-tiny (docs/detectors.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from video_runner.adapters.detectors.darknet.cfg import parse_cfg
from video_runner.adapters.detectors.darknet.weights import read_weights
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    import onnx

__all__ = ["CONVERTER_VERSION", "convert", "onnx_package", "read_names"]

#: Written into every converted model; bump it when the graph a cfg gives changes.
CONVERTER_VERSION = "1"


def onnx_package() -> ModuleType:
    """The onnx package, which only converting (or installing the bundled model) needs.

    It is the ``convert`` extra, not a dependency of the services: the container image converts
    its model at build time and leaves the package out.

    Raises:
        ConfigurationError: the package is not installed.
    """
    try:
        import onnx
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            "converting a detector model needs the onnx package: "
            "pip install 'video-runner[convert]'"
        ) from error
    return onnx


def read_names(text: str) -> list[str]:
    """A darknet ``.names`` file: one class name a line, blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def convert(
    cfg_text: str,
    weights: bytes,
    names: Sequence[str],
    *,
    model_name: str,
    model_version: str,
    size: tuple[int, int] | None = None,
    expose_layers: bool = False,
) -> onnx.ModelProto:
    """Convert a darknet YOLO model; raises ``ConfigurationError`` if the parts disagree."""
    # The graph builder needs the onnx package, which costs a process ~150 MB and a second
    # to import: only a conversion pays for it, not every process that names the bundled model.
    onnx_package()
    from video_runner.adapters.detectors.darknet.graph import build_graph

    network = parse_cfg(cfg_text, size)
    if len(names) != network.classes:
        raise ConfigurationError(
            f"darknet: {len(names)} class names for a network of {network.classes} classes"
        )
    model = build_graph(network, read_weights(network, weights), expose_layers=expose_layers)
    metadata = {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr([network.net.height, network.net.width]),
        "task": "detect",
        "model_name": model_name,
        "model_version": model_version,
        "converter": f"video-runner darknet {CONVERTER_VERSION}",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model
