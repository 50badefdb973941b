"""Preprocessing: the seed's blur and contrast, and JPEG round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import decode_jpeg, encode_jpeg, preprocess


@pytest.fixture
def image():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


def test_preprocess_is_the_seed_gaussian_blur_then_convert_scale_abs(image):
    """The output equals the plain OpenCV calls with the default parameters, pixel for pixel."""
    expected = cv2.convertScaleAbs(cv2.GaussianBlur(image, (3, 3), 0), alpha=1.3, beta=5)
    result = preprocess(image, Preprocessing())
    assert result.dtype == np.uint8
    assert result.shape == image.shape
    np.testing.assert_array_equal(result, expected)


def test_preprocess_honours_other_parameters(image):
    """Kernel size, alpha and beta come from the Preprocessing value."""
    p = Preprocessing(blur_ksize=5, alpha=0.5, beta=-3.0)
    expected = cv2.convertScaleAbs(cv2.GaussianBlur(image, (5, 5), 0), alpha=0.5, beta=-3.0)
    np.testing.assert_array_equal(preprocess(image, p), expected)


def test_preprocess_leaves_its_input_untouched(image):
    """The caller's frame is not modified in place."""
    before = image.copy()
    preprocess(image, Preprocessing())
    np.testing.assert_array_equal(image, before)


def test_a_jpeg_round_trip_keeps_shape_and_is_close_at_high_quality(image):
    """Encoding then decoding gives the same shape and nearly the same smooth picture."""
    smooth = cv2.GaussianBlur(image, (9, 9), 0)
    data = encode_jpeg(smooth, 95)
    assert data[:2] == b"\xff\xd8"
    decoded = decode_jpeg(data)
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth.astype(int)).mean() < 3


def test_lower_quality_gives_smaller_jpegs(image):
    """Quality is passed through to the encoder."""
    assert len(encode_jpeg(image, 30)) < len(encode_jpeg(image, 95))


def test_odd_dimensions_encode_and_decode(image):
    """Odd widths and heights are fine for the JPEG path."""
    odd = np.ascontiguousarray(image[:47, :63])
    assert decode_jpeg(encode_jpeg(odd, 90)).shape == (47, 63, 3)


def test_bytes_that_are_not_a_jpeg_are_refused():
    """decode_jpeg raises ValueError rather than returning None."""
    with pytest.raises(ValueError, match="JPEG"):
        decode_jpeg(b"not a jpeg")


def test_a_quality_outside_jpeg_range_is_refused(image):
    """Quality must be within 1..100."""
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(image, 0)
