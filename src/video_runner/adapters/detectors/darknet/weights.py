"""Darknet's ``.weights`` file: a small header, then every convolution's floats in layer order.

Per convolutional layer darknet stores ``biases``, then (with batch normalisation) ``scales``,
``rolling_mean`` and ``rolling_variance``, then the kernel, all float32 little-endian
(``load_convolutional_weights`` in darknet's ``src/parser.c``). The file must hold exactly the
floats the cfg calls for: a short or long file means the two do not belong together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from video_runner.adapters.detectors.darknet.layers import conv_layers, input_shape
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy.typing as npt

    from video_runner.adapters.detectors.darknet.layers import Network

_HEADER_INTS = 3
#: From this major*10+minor on, darknet writes the "images seen" counter as 64 bits.
_WIDE_SEEN_FROM = 2
_TRANSPOSED_FROM = 1000


@dataclass(frozen=True, slots=True)
class ConvWeights:
    """One convolution's parameters as darknet stores them (batch norm not folded)."""

    biases: npt.NDArray[np.float32]
    #: ``scales``, ``rolling_mean``, ``rolling_variance``; ``None`` without batch norm.
    norm: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]] | None
    #: ``[filters, in_channels / groups, size, size]``.
    kernel: npt.NDArray[np.float32]


def read_weights(network: Network, data: bytes) -> dict[int, ConvWeights]:
    """Every convolution's weights by layer index; raises ``ConfigurationError`` on a mismatch."""
    header = np.frombuffer(data, dtype="<i4", count=_HEADER_INTS) if len(data) >= 12 else None  # noqa: PLR2004
    if header is None:
        raise ConfigurationError("darknet weights: file too short for its header")
    major, minor = int(header[0]), int(header[1])
    if major >= _TRANSPOSED_FROM or minor >= _TRANSPOSED_FROM:
        raise ConfigurationError("darknet weights: transposed (old format) files are not supported")
    offset = 4 * _HEADER_INTS + (8 if major * 10 + minor >= _WIDE_SEEN_FROM else 4)
    floats = np.frombuffer(data, dtype="<f4", offset=offset)
    position = 0
    found: dict[int, ConvWeights] = {}
    for index, layer in conv_layers(network):
        in_channels = input_shape(network, layer.source).c
        needed = layer.weight_count(in_channels)
        if position + needed > len(floats):
            raise ConfigurationError(
                f"darknet weights: file ends inside layer {index}; the cfg and weights differ"
            )

        def take(count: int) -> npt.NDArray[np.float32]:
            nonlocal position
            part = floats[position : position + count].astype(np.float32)
            position += count
            return part

        filters = layer.filters
        biases = take(filters)
        norm = (take(filters), take(filters), take(filters)) if layer.batch_normalize else None
        kernel = take(filters * (in_channels // layer.groups) * layer.size * layer.size)
        found[index] = ConvWeights(
            biases=biases,
            norm=norm,
            kernel=kernel.reshape(filters, in_channels // layer.groups, layer.size, layer.size),
        )
    if position != len(floats):
        raise ConfigurationError(
            f"darknet weights: {len(floats) - position} floats left over; cfg and weights differ"
        )
    return found
