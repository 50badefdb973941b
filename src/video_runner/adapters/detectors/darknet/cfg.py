"""Darknet's ``.cfg`` network description, parsed into typed layers with their output shapes.

A cfg is an INI-like list of sections (``[net]``, ``[convolutional]``, ``[route]``, ...); each
layer after ``[net]`` reads the output of the one before it unless it says otherwise. Only the
layers the YOLO detection models need are supported (the tiny and full YOLOv3 / YOLOv4 graphs);
anything else is refused with the section's index and name, never guessed at.

Shapes follow darknet's own arithmetic (``src/*_layer.c``), so a graph built from them has
the very sizes darknet computes, odd sizes included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Activations darknet names in a cfg and the graph builder knows.
ACTIVATIONS = frozenset({"leaky", "linear", "logistic", "relu", "mish"})


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


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """The cfg's sections in order, each with its ``key=value`` options (comments dropped)."""
    found: list[tuple[str, dict[str, str]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            found.append((line[1:-1].strip().lower(), {}))
            continue
        key, sep, value = line.partition("=")
        if not sep or not found:
            raise ConfigurationError(f"darknet cfg line {number}: expected key=value, got {raw!r}")
        found[-1][1][key.strip().lower()] = value.strip()
    return found


class _Options:
    """One section's options, read with darknet's defaults and a clear error on bad values."""

    def __init__(self, index: int, kind: str, values: dict[str, str]) -> None:
        self._where = f"darknet cfg layer {index} [{kind}]"
        self._values = values

    def integer(self, key: str, default: int | None = None) -> int:
        raw = self._values.get(key)
        if raw is None:
            if default is None:
                raise ConfigurationError(f"{self._where}: '{key}' is required")
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not an integer: {raw!r}") from None

    def number(self, key: str, default: float) -> float:
        raw = self._values.get(key)
        try:
            return default if raw is None else float(raw)
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a number: {raw!r}") from None

    def integers(self, key: str) -> tuple[int, ...]:
        raw = self._values.get(key, "")
        try:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a list: {raw!r}") from None

    def numbers(self, key: str) -> tuple[float, ...]:
        raw = self._values.get(key, "")
        try:
            return tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigurationError(f"{self._where}: '{key}' is not a list: {raw!r}") from None

    def activation(self) -> str:
        name = self._values.get("activation", "logistic").lower()
        if name not in ACTIVATIONS:
            raise ConfigurationError(f"{self._where}: unsupported activation {name!r}")
        return name

    def fail(self, why: str) -> ConfigurationError:
        return ConfigurationError(f"{self._where}: {why}")


def parse_cfg(text: str, size: tuple[int, int] | None = None) -> Network:
    """Parse a darknet cfg; raises ``ConfigurationError`` on anything it cannot build exactly.

    ``size`` (height, width) replaces the ``[net]`` input size: the weights of a fully
    convolutional network do not depend on it, and the anchors are in input pixels.
    """
    found = sections(text)
    if not found or found[0][0] not in {"net", "network"}:
        raise ConfigurationError("darknet cfg: the first section must be [net]")
    net_options = _Options(0, "net", found[0][1])
    height, width = size or (net_options.integer("height"), net_options.integer("width"))
    net = Net(width=width, height=height, channels=net_options.integer("channels", 3))
    shapes: list[Shape] = []
    layers: list[Layer] = []
    for index, (kind, values) in enumerate(found[1:]):
        options = _Options(index, kind, values)
        previous = shapes[-1] if shapes else Shape(net.channels, net.height, net.width)
        layer = _layer(kind, index, options, previous, shapes)
        layers.append(layer)
        shapes.append(layer.shape)
    if not any(isinstance(layer, Yolo) for layer in layers):
        raise ConfigurationError("darknet cfg: no [yolo] layer, so nothing to detect with")
    return Network(net, tuple(layers))


def _absolute(index: int, reference: int, options: _Options) -> int:
    """A layer reference as darknet reads it: negative counts back from this layer."""
    target = index + reference if reference < 0 else reference
    if not 0 <= target < index:
        raise options.fail(f"refers to layer {reference}, outside 0..{index - 1}")
    return target


def _layer(kind: str, index: int, options: _Options, previous: Shape, shapes: list[Shape]) -> Layer:
    source = index - 1
    if kind in {"convolutional", "conv"}:
        return _convolutional(options, previous, source)
    if kind == "maxpool":
        size = options.integer("size", 2)
        stride = options.integer("stride", 2)
        padding = options.integer("padding", size - 1)
        out_h = (previous.h + padding - size) // stride + 1
        out_w = (previous.w + padding - size) // stride + 1
        return MaxPool(size, stride, padding, source, Shape(previous.c, out_h, out_w))
    if kind == "route":
        return _route(index, options, shapes)
    if kind == "shortcut":
        other = _absolute(
            index, options.integers("from")[0] if options.integers("from") else 0, options
        )
        if shapes[other] != previous:
            raise options.fail("shortcut of layers with different shapes is not supported")
        return Shortcut(other, options.activation(), source, previous)
    if kind == "upsample":
        stride = options.integer("stride", 2)
        if stride < 1:
            raise options.fail("only positive upsampling strides are supported")
        return Upsample(stride, source, Shape(previous.c, previous.h * stride, previous.w * stride))
    if kind == "yolo":
        return _yolo(options, previous, source)
    raise options.fail("this layer kind is not supported by the converter")


def _convolutional(options: _Options, previous: Shape, source: int) -> Convolutional:
    filters, size = options.integer("filters", 1), options.integer("size", 1)
    stride = options.integer("stride", 1)
    # pad=1 means "size // 2" in darknet; an explicit padding= wins.
    pad = options.integer("padding", size // 2 if options.integer("pad", 0) else 0)
    groups = options.integer("groups", 1)
    if groups < 1 or previous.c % groups or filters % groups:
        raise options.fail(f"groups={groups} does not divide the channels")
    if (
        options.integer("stride_x", stride) != stride
        or options.integer("stride_y", stride) != stride
    ):
        raise options.fail("different x and y strides are not supported")
    if options.integer("dilation", 1) != 1:
        raise options.fail("dilated convolutions are not supported")
    out_h = (previous.h + 2 * pad - size) // stride + 1
    out_w = (previous.w + 2 * pad - size) // stride + 1
    return Convolutional(
        filters=filters,
        size=size,
        stride=stride,
        pad=pad,
        groups=groups,
        batch_normalize=bool(options.integer("batch_normalize", 0)),
        activation=options.activation(),
        source=source,
        shape=Shape(filters, out_h, out_w),
    )


def _route(index: int, options: _Options, shapes: list[Shape]) -> Route:
    sources = tuple(_absolute(index, ref, options) for ref in options.integers("layers"))
    if not sources:
        raise options.fail("'layers' is required")
    groups, group_id = options.integer("groups", 1), options.integer("group_id", 0)
    first = shapes[sources[0]]
    if any((shapes[s].h, shapes[s].w) != (first.h, first.w) for s in sources):
        raise options.fail("routed layers differ in height or width")
    channels = sum(shapes[s].c for s in sources)
    if groups < 1 or not 0 <= group_id < groups or channels % groups:
        raise options.fail(f"groups={groups} group_id={group_id} do not split {channels} channels")
    return Route(sources, groups, group_id, Shape(channels // groups, first.h, first.w))


def _yolo(options: _Options, previous: Shape, source: int) -> Yolo:
    classes = options.integer("classes", 20)
    values = options.numbers("anchors")
    if len(values) % 2:
        raise options.fail("'anchors' must be width,height pairs")
    pairs = tuple(zip(values[0::2], values[1::2], strict=True))
    mask = options.integers("mask") or tuple(range(len(pairs)))
    if any(not 0 <= m < len(pairs) for m in mask):
        raise options.fail(f"mask {mask} names anchors outside the {len(pairs)} given")
    if options.integer("new_coords", 0):
        raise options.fail("new_coords=1 (scaled YOLOv4 heads) is not supported")
    if previous.c != len(mask) * (5 + classes):
        raise options.fail(
            f"input has {previous.c} channels, expected {len(mask)} x (5 + {classes})"
        )
    return Yolo(
        anchors=tuple(pairs[m] for m in mask),
        classes=classes,
        scale_x_y=options.number("scale_x_y", 1.0),
        source=source,
        shape=previous,
        mask=mask,
    )


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
