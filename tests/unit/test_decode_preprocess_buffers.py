"""Preprocessing into reused per-thread arrays is pixel-identical to the seed's calls."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import encode_jpeg, preprocess
from video_runner.domain.preprocess_buffers import PreprocessBuffers


def images(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in shapes]


@pytest.mark.parametrize(
    "p",
    [Preprocessing(), Preprocessing(blur_ksize=5, alpha=0.7, beta=-20.0), Preprocessing(1, 1, 0)],
    ids=["seed", "other", "identity"],
)
def test_reused_buffers_give_the_seed_pixels_and_jpeg_bytes_frame_after_frame(p):
    """Repeated calls, and a change of frame size, never leak pixels from an earlier frame."""
    buffers = PreprocessBuffers()
    shapes = [(72, 128, 3), (72, 128, 3), (47, 63, 3), (72, 128, 3)]
    for image in images(1, shapes):
        got = buffers.preprocess(image, p)
        want = preprocess(image, p)
        np.testing.assert_array_equal(got, want)
        assert encode_jpeg(got, 95) == encode_jpeg(want, 95)


def test_the_same_thread_gets_the_same_arrays_back():
    """The point of the buffers: no fresh allocation per frame once the size is known."""
    buffers = PreprocessBuffers()
    first, second = images(2, [(48, 64, 3), (48, 64, 3)])
    out = buffers.preprocess(first, Preprocessing())
    assert buffers.preprocess(second, Preprocessing()) is out


@pytest.mark.parametrize(
    "code", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE]
)
def test_rotation_into_a_buffer_equals_cv2_rotate(code):
    """Rotated into a reused array, including non-square and odd sizes."""
    buffers = PreprocessBuffers()
    for image in images(3, [(47, 63, 3), (48, 64, 3)]):
        np.testing.assert_array_equal(buffers.rotate(image, code), cv2.rotate(image, code))
