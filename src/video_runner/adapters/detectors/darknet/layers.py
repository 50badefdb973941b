"""Darknet's layers as typed values, each with the output shape darknet computes for it.

:mod:`.cfg` builds them from a cfg; the weights reader and the graph builder read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True, slots=True)
class Shape:
    """A layer's output: channels, height, width (darknet's c, h, w)."""

    c: int
    h: int
    w: int


@dataclass(frozen=True, slots=True)
class Net:
    """The ``[net]`` section: the input the weights were trained for."""

    width: int
    height: int
    channels: int


@dataclass(frozen=True, slots=True)
class Convolutional:
    filters: int
    size: int
    stride: int
    pad: int
    groups: int
    batch_normalize: bool
    activation: str
    source: int
    shape: Shape

    def weight_count(self, in_channels: int) -> int:
        """Floats this layer reads from a ``.weights`` file, in darknet's order."""
        per_filter = in_channels // self.groups * self.size * self.size
        norms = 3 * self.filters if self.batch_normalize else 0
        return self.filters + norms + self.filters * per_filter


@dataclass(frozen=True, slots=True)
class MaxPool:
    size: int
    stride: int
    #: Darknet's total padding (default ``size - 1``); ``pad // 2`` goes before, the rest after.
    padding: int
    source: int
    shape: Shape


@dataclass(frozen=True, slots=True)
class Route:
    """Concatenates the named layers along channels, or takes one of ``groups`` channel slices."""

    sources: tuple[int, ...]
    groups: int
    group_id: int
    shape: Shape


@dataclass(frozen=True, slots=True)
class Shortcut:
    """Adds the output of ``other`` to the previous layer's (residual), then an activation."""

    other: int
    activation: str
    source: int
    shape: Shape


@dataclass(frozen=True, slots=True)
class Upsample:
    stride: int
    source: int
    shape: Shape


@dataclass(frozen=True, slots=True)
class Yolo:
    """A detection head: decodes its input into boxes for the anchors of ``mask``."""

    anchors: tuple[tuple[float, float], ...]
    classes: int
    scale_x_y: float
    source: int
    shape: Shape
    mask: tuple[int, ...] = field(default=())


Layer = Convolutional | MaxPool | Route | Shortcut | Upsample | Yolo


@dataclass(frozen=True, slots=True)
class Network:
    net: Net
    layers: tuple[Layer, ...]

    @property
    def heads(self) -> list[Yolo]:
        return [layer for layer in self.layers if isinstance(layer, Yolo)]

    @property
    def classes(self) -> int:
        counts = {head.classes for head in self.heads}
        if len(counts) != 1:
            raise ConfigurationError(f"darknet cfg: yolo layers disagree on classes: {counts}")
        return counts.pop()


def conv_layers(network: Network) -> Iterable[tuple[int, Convolutional]]:
    """The convolutional layers with their index, in the order their weights are stored."""
    return (
        (i, layer) for i, layer in enumerate(network.layers) if isinstance(layer, Convolutional)
    )


def input_shape(network: Network, source: int) -> Shape:
    """The shape a layer reads: the network input for the first layer, else its source's."""
    if source < 0:
        net = network.net
        return Shape(net.channels, net.height, net.width)
    return network.layers[source].shape
