"""OnnxYoloDetector against a tiny real ONNX model built here with the YOLOv8/YOLO11 output layout.

The model takes ``images`` [N, 3, 64, 64] and returns [N, 4 + 2, 5]: five anchors with fixed
boxes (cx, cy, w, h in input pixels) and class scores that are either constant or proportional
to ``m``, the mean brightness of the input square x 16..32, y 24..40 (anchor 0's box). So a white
square drawn where that region lands after letterboxing lights up anchors 0, 1 and 2:

=======  ====================  ======================  ===========================
anchor   box (cx, cy, w, h)    scores (class 0, 1)     role
=======  ====================  ======================  ===========================
0        24, 32, 16, 16        m, 0                    the object
1        25, 33, 16, 16        0.9 m, 0                a duplicate NMS must drop
2        24, 32, 16, 16        0, 0.8 m                same place, other class: kept
3        48, 12, 8, 8          0, 0.2                  below the default threshold
4        60, 32, 16, 16        0.6, 0                  sticks out right: clipped
=======  ====================  ======================  ===========================
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from video_runner.adapters.detectors import OnnxYoloDetector, build_detector
from video_runner.adapters.detectors.letterbox import letterbox
from video_runner.adapters.detectors.onnx_layout import parse_names
from video_runner.adapters.detectors.onnx_session import open_session
from video_runner.errors import ConfigurationError

SIZE = 64
BOXES = [(24, 32, 16, 16), (25, 33, 16, 16), (24, 32, 16, 16), (48, 12, 8, 8), (60, 32, 16, 16)]
# (anchor, class) -> (factor of m, constant)
SCORES = {(0, 0): (1.0, 0.0), (1, 0): (0.9, 0.0), (2, 1): (0.8, 0.0), (3, 1): (0.0, 0.2)}
SCORES[4, 0] = (0.0, 0.6)
NAMES = "{0: 'person', 1: 'bicycle'}"

# A 160 x 96 frame letterboxes with gain 0.4 and 13 px of grey above and below the 64 x 38
# picture, so input pixel (x, y) is frame pixel (x / 0.4, (y - 13) / 0.4).
FRAME_W, FRAME_H = 160, 96

#: The factory's ONNX tuning besides the thresholds, as settings would give it.
ONNX_TUNING = {"model_dir": "unused", "threads": 1, "providers": ("CPUExecutionProvider",)}


def to_frame(x: float, y: float) -> tuple[float, float]:
    return x / 0.4, (y - 13) / 0.4


def yolo_like_model(
    path,
    *,
    batch: int | str = "N",
    names: str | None = NAMES,
    metadata: dict[str, str] | None = None,
    float16: bool = False,
) -> str:
    """Write the model described in the module docstring; return its path as a string."""
    anchors = len(BOXES)
    channels = 4 + 2
    weight = np.zeros((channels, anchors), np.float32)
    bias = np.zeros((channels, anchors), np.float32)
    for a, (cx, cy, w, h) in enumerate(BOXES):
        bias[:4, a] = (cx, cy, w, h)
    for (a, c), (factor, constant) in SCORES.items():
        weight[4 + c, a] = factor
        bias[4 + c, a] = constant

    def const(name, array):
        return helper.make_node(
            "Constant",
            [],
            [name],
            value=helper.make_tensor(
                name + "_v",
                TensorProto.FLOAT if array.dtype == np.float32 else TensorProto.INT64,
                array.shape,
                array.ravel().tolist(),
            ),
        )

    nodes = [
        const("starts", np.array([24, 16], np.int64)),
        const("ends", np.array([40, 32], np.int64)),
        const("axes", np.array([2, 3], np.int64)),
        helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["pixels", "starts", "ends", "axes"], ["region"]),
        helper.make_node("ReduceMean", ["region"], ["m4"], axes=[1, 2, 3], keepdims=1),
        const("flat", np.array([-1, 1], np.int64)),
        helper.make_node("Reshape", ["m4", "flat"], ["m"]),
        const("W", weight.reshape(1, -1)),
        const("B", bias.reshape(-1)),
        helper.make_node("Gemm", ["m", "W", "B"], ["out_flat"]),
        const("out_shape", np.array([-1, channels, anchors], np.int64)),
        helper.make_node("Reshape", ["out_flat", "out_shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [
            helper.make_tensor_value_info(
                "images",
                TensorProto.FLOAT16 if float16 else TensorProto.FLOAT,
                [batch, 3, SIZE, SIZE],
            )
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, channels, anchors])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"task": "detect", "imgsz": f"[{SIZE}, {SIZE}]"}
    if names is not None:
        props["names"] = names
    helper.set_model_props(model, props | (metadata or {}))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def model_path(tmp_path):
    return yolo_like_model(tmp_path / "yolo_like.onnx")


def frame_with_square() -> np.ndarray:
    """A dark 160 x 96 frame with a white square where anchor 0's box lands."""
    frame = np.full((FRAME_H, FRAME_W, 3), 20, np.uint8)
    (x1, y1), (x2, y2) = to_frame(16, 24), to_frame(32, 40)
    frame[round(y1) : round(y2), round(x1) : round(x2)] = 255
    return frame


def best(detections, cls):
    """The most confident detection of a class (detections come most confident first)."""
    return next(d for d in detections if d.cls == cls)


def test_a_white_square_in_a_non_square_frame_is_boxed_in_that_frames_pixels(model_path):
    """The box of the lit anchor comes back through the letterbox to the frame's own pixels."""
    [detections] = OnnxYoloDetector(model_path).detect([frame_with_square()])

    person = best(detections, "person")
    assert person.box == pytest.approx((*to_frame(16, 24), *to_frame(32, 40)))
    assert person.box == pytest.approx((40.0, 27.5, 80.0, 67.5))
    assert person.conf > 0.9


def test_nms_drops_the_duplicate_of_a_class_but_keeps_the_same_place_in_another_class(model_path):
    """Anchor 1 overlaps anchor 0 in the same class and goes; anchor 2, another class, stays."""
    [detections] = OnnxYoloDetector(model_path).detect([frame_with_square()])

    persons = [d for d in detections if d.cls == "person" and d.box[0] < 100]
    assert len(persons) == 1
    assert persons[0].conf == pytest.approx(max(d.conf for d in persons))
    bicycle = best(detections, "bicycle")
    assert bicycle.box == pytest.approx(persons[0].box)
    assert bicycle.conf == pytest.approx(0.8 * persons[0].conf, rel=1e-4)


def test_a_higher_iou_threshold_keeps_the_overlapping_duplicate(model_path):
    """With IoU 0.9 the two same-class boxes (IoU about 0.78) do not suppress each other."""
    [detections] = OnnxYoloDetector(model_path, iou=0.9).detect([frame_with_square()])

    assert len([d for d in detections if d.cls == "person" and d.box[0] < 100]) == 2


def test_scores_at_or_below_the_confidence_threshold_are_dropped(model_path):
    """Anchor 3 scores 0.2: gone at the default 0.25, back at 0.1, and 0.6 goes at 0.6."""
    black = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)

    [default] = OnnxYoloDetector(model_path).detect([black])
    [low] = OnnxYoloDetector(model_path, confidence=0.1).detect([black])
    [high] = OnnxYoloDetector(model_path, confidence=0.6).detect([black])

    assert [(d.cls, round(d.conf, 4)) for d in default] == [("person", 0.6)]
    assert sorted((d.cls, round(d.conf, 4)) for d in low) == [("bicycle", 0.2), ("person", 0.6)]
    assert high == []


def test_a_box_that_sticks_out_of_the_picture_is_clipped_to_the_frame(model_path):
    """Anchor 4 spans input x 52..68 on a 64-wide input: its right edge stops at the frame's."""
    [detections] = OnnxYoloDetector(model_path).detect([np.zeros((FRAME_H, FRAME_W, 3), np.uint8)])

    [edge] = detections
    assert edge.box == pytest.approx((to_frame(52, 24)[0], to_frame(52, 24)[1], 160.0, 67.5))


def test_boxes_reaching_into_the_letterbox_bands_are_clipped_and_those_wholly_in_them_dropped(
    tmp_path,
):
    """A frame twice as tall as wide has grey bands left and right; boxes stop at its edges."""
    path = yolo_like_model(tmp_path / "m.onnx")
    tall = np.zeros((128, 64, 3), np.uint8)  # gain 0.5, 16 px bands left and right

    [detections] = OnnxYoloDetector(path, confidence=0.1).detect([tall])

    # Anchor 3, input x 44..52, is frame x 56..72: clipped at 64. Anchor 4, input x 52..68,
    # is frame x 72..104: wholly in the right band, so dropped.
    assert [(d.cls, d.box) for d in detections] == [("bicycle", (56.0, 16.0, 64.0, 32.0))]


def test_class_names_come_from_the_models_names_metadata(model_path):
    """The Ultralytics dict literal in the metadata names the classes."""
    detector = OnnxYoloDetector(model_path)

    assert detector.class_names == {0: "person", 1: "bicycle"}
    assert detector.input_size == (SIZE, SIZE)
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    assert detector.name == f"onnx-yolo:yolo_like.onnx@{digest[:12]}"


def test_given_class_names_win_over_the_metadata(model_path):
    """Names passed to the constructor replace the model's."""
    [detections] = OnnxYoloDetector(model_path, class_names=["cat", "dog"]).detect(
        [frame_with_square()]
    )

    assert {d.cls for d in detections} == {"cat", "dog"}


def test_a_model_without_names_metadata_falls_back_to_class_indices(tmp_path):
    """No ``names`` in the metadata: classes are called class_<i>."""
    path = yolo_like_model(tmp_path / "anonymous.onnx", names=None)

    [detections] = OnnxYoloDetector(path).detect([frame_with_square()])

    assert {d.cls for d in detections} == {"class_0", "class_1"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{0: 'person', 1: 'bicycle'}", {0: "person", 1: "bicycle"}),
        ("['a', 'b']", {0: "a", 1: "b"}),
        ("__import__('os').system('true')", None),
        ("{0: 1}", None),
        ("not a literal", None),
        ("", None),
        (None, None),
    ],
)
def test_names_metadata_is_parsed_as_a_literal_and_never_executed(raw, expected):
    """Only a dict or list literal of strings is accepted; anything else is ignored."""
    assert parse_names(raw) == expected


class CountingSession:
    """Wraps an onnxruntime session to record the batch size of every ``run`` call."""

    def __init__(self, session):
        self.session = session
        self.batches = []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, output_names, feeds):
        self.batches.extend(len(v) for v in feeds.values())
        return self.session.run(output_names, feeds)


def counted(model) -> tuple[OnnxYoloDetector, CountingSession]:
    """A detector of ``model`` whose session is a ``CountingSession``."""
    spies = []

    def opened(*args):
        spies.append(CountingSession(open_session(*args)))
        return spies[-1]

    return OnnxYoloDetector(model, open_session=opened), spies[0]


def test_a_dynamic_batch_model_runs_all_images_in_one_call(model_path):
    """N is symbolic, so three frames go through onnxruntime together."""
    detector, spy = counted(model_path)
    frames = [frame_with_square(), np.zeros((FRAME_H, FRAME_W, 3), np.uint8), frame_with_square()]

    results = detector.detect(frames)

    assert spy.batches == [3]
    assert [len(r) for r in results] == [3, 1, 3]


def test_a_fixed_batch_of_one_model_runs_images_one_by_one_with_the_same_results(
    tmp_path, model_path
):
    """A batch-1 export runs each image alone and finds exactly what the dynamic one finds."""
    fixed, spy = counted(yolo_like_model(tmp_path / "b1.onnx", batch=1))
    frames = [frame_with_square(), np.zeros((FRAME_H, FRAME_W, 3), np.uint8)]

    results = fixed.detect(frames)

    assert spy.batches == [1, 1]
    assert results == OnnxYoloDetector(model_path).detect(frames)


def test_a_fixed_batch_larger_than_the_input_is_padded_and_trimmed(tmp_path, model_path):
    """A batch-2 export given three frames runs twice and returns exactly three results."""
    fixed, spy = counted(yolo_like_model(tmp_path / "b2.onnx", batch=2))
    frames = [frame_with_square(), np.zeros((FRAME_H, FRAME_W, 3), np.uint8), frame_with_square()]

    results = fixed.detect(frames)

    assert spy.batches == [2, 2]
    assert results == OnnxYoloDetector(model_path).detect(frames)


def test_no_images_give_no_results_without_running_the_model(model_path):
    """An empty batch is answered without calling onnxruntime."""
    assert OnnxYoloDetector(model_path).detect([]) == []


def test_the_letterbox_matches_ultralytics_padding_for_an_odd_margin():
    """100 x 61 into 64 x 64: gain 0.64, 39 x 64 picture, grey split 12 above and 13 below."""
    image = np.full((61, 100, 3), 255, np.uint8)

    padded, box = letterbox(image, (SIZE, SIZE))

    assert padded.shape == (SIZE, SIZE, 3)
    assert (box.gain, box.left, box.top) == (0.64, 0, 12)
    assert (padded[:12] == 114).all()
    assert (padded[12 + 39 :] == 114).all()
    assert (padded[12 : 12 + 39] == 255).all()


def test_detections_are_identical_across_runs(model_path):
    """Same frames, same model: same detections in the same order."""
    frames = [frame_with_square()] * 2

    assert OnnxYoloDetector(model_path).detect(frames) == OnnxYoloDetector(model_path).detect(
        frames
    )


def test_the_factory_builds_the_onnx_detector_with_the_given_thresholds(model_path):
    """DETECTOR=onnx with a valid model gives an OnnxYoloDetector using those thresholds."""
    detector = build_detector(
        "onnx", onnx_model_path=model_path, confidence=0.1, iou=0.45, **ONNX_TUNING
    )

    assert isinstance(detector, OnnxYoloDetector)
    [detections] = detector.detect([np.zeros((FRAME_H, FRAME_W, 3), np.uint8)])
    assert len(detections) == 2


@pytest.mark.parametrize("path", [None, ""])
def test_the_factory_without_a_model_path_asks_to_install_the_bundled_model(path, tmp_path):
    """DETECTOR=onnx with no ONNX_MODEL_PATH opens the bundled model; missing, it says how."""
    tuning = {**ONNX_TUNING, "model_dir": tmp_path}
    with pytest.raises(ConfigurationError, match="video-runner models install"):
        build_detector("onnx", onnx_model_path=path, confidence=0.25, iou=0.45, **tuning)


def test_the_factory_refuses_a_model_file_that_does_not_exist(tmp_path):
    """A path to nothing is a configuration error naming the path."""
    missing = tmp_path / "nope.onnx"

    with pytest.raises(ConfigurationError, match=r"not found.*nope\.onnx"):
        build_detector("onnx", onnx_model_path=missing, confidence=0.25, iou=0.45, **ONNX_TUNING)


def test_the_factory_refuses_a_file_that_is_not_an_onnx_model(tmp_path):
    """Bytes onnxruntime cannot parse are a configuration error, not a crash at first frame."""
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"this is not protobuf")

    with pytest.raises(ConfigurationError, match="cannot load ONNX model"):
        build_detector("onnx", onnx_model_path=bogus, confidence=0.25, iou=0.45, **ONNX_TUNING)


def test_a_model_with_a_non_yolo_output_is_refused(tmp_path):
    """A valid ONNX whose output is not [N, 4 + classes, anchors] is a configuration error."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["output0"], axes=[2, 3], keepdims=0)],
        "classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "classifier.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ConfigurationError, match=r"4 \+ classes"):
        OnnxYoloDetector(path)


def test_a_float16_export_gets_float16_input_and_finds_the_same_box(tmp_path, model_path):
    """A ``half=True`` export takes float16 pixels; the box is the float32 model's."""
    half = OnnxYoloDetector(yolo_like_model(tmp_path / "half.onnx", float16=True))

    [detections] = half.detect([frame_with_square()])

    [reference] = OnnxYoloDetector(model_path).detect([frame_with_square()])
    assert best(detections, "person").box == pytest.approx(best(reference, "person").box)
    assert best(detections, "person").conf == pytest.approx(
        best(reference, "person").conf, abs=1e-3
    )


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"task": "segment"}, "only 'detect'"),
        ({"args": "{'batch': 1, 'nms': True}"}, "NMS inside"),
        ({"names": "{0: 'person', 1: 'bicycle', 2: 'car'}"}, "6 channels but .* 3 classes"),
    ],
)
def test_an_export_whose_metadata_contradicts_the_layout_is_refused(tmp_path, metadata, message):
    """Non-detect tasks, NMS-inside exports and class counts that do not match are refused."""
    path = yolo_like_model(tmp_path / "odd.onnx", metadata=metadata)

    with pytest.raises(ConfigurationError, match=message):
        OnnxYoloDetector(path)


def test_the_factory_refuses_an_unknown_detector_kind():
    """A typo in DETECTOR is a configuration error listing the valid kinds."""
    with pytest.raises(ConfigurationError, match="hog"):
        build_detector("yolo", onnx_model_path=None, confidence=0.25, iou=0.45, **ONNX_TUNING)
