"""Preprocessing into reused per-thread arrays is pixel-identical to the seed's calls."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import encode_jpeg, preprocess
from video_runner.extraction.preprocess_buffers import PreprocessBuffers, contrast_table


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


# 6,000 bytes per row: 21-row strips, so these heights end with strips of 21, 1, 2 and 20 rows.
@pytest.mark.parametrize("height", [1, 2, 3, 21, 22, 44, 104, 125])
@pytest.mark.parametrize("ksize", [1, 3, 5, 7])
def test_strips_give_the_whole_frame_pixels_at_every_strip_edge(height, ksize):
    """Each strip's blur sees the rows the whole-frame blur sees, up to the frame's edges."""
    p = Preprocessing(blur_ksize=ksize, alpha=1.3, beta=5.0)
    (image,) = images(height * 10 + ksize, [(height, 2000, 3)])
    np.testing.assert_array_equal(PreprocessBuffers().preprocess(image, p), preprocess(image, p))


@pytest.mark.parametrize(
    ("alpha", "beta"), [(1.3, 5.0), (0.7, -20.0), (-1.5, 3.0), (2.5, 0.25), (1.0, 0.0)]
)
def test_the_contrast_table_is_what_convert_scale_abs_gives_for_every_byte_anywhere(alpha, beta):
    """Every byte value, at vector and tail positions alike, maps as the seed's call maps it."""
    table = contrast_table(alpha, beta)
    assert table is not None
    values = np.tile(np.arange(256, dtype=np.uint8), 7)[: 256 * 7 - 3].reshape(1, -1)
    np.testing.assert_array_equal(
        cv2.LUT(values, table), cv2.convertScaleAbs(values, alpha=alpha, beta=beta)
    )
