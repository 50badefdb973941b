"""Darknet's ``.cfg`` network description, parsed into typed layers with their output shapes.

A cfg is an INI-like list of sections (``[net]``, ``[convolutional]``, ``[route]``, ...); each
layer after ``[net]`` reads the output of the one before it unless it says otherwise. Only the
layers the YOLO detection models need are supported (the tiny and full YOLOv3 / YOLOv4 graphs);
anything else is refused with the section's index and name, never guessed at.

Shapes follow darknet's own arithmetic (``src/*_layer.c``), so a graph built from them has
the very sizes darknet computes, odd sizes included. The text is split into sections by
:mod:`.sections`; the layer types it builds live in :mod:`.layers`.
"""

from __future__ import annotations

from video_runner.adapters.detectors.darknet.layers import (
    Convolutional,
    Layer,
    MaxPool,
    Net,
    Network,
    Route,
    Shape,
    Shortcut,
    Upsample,
    Yolo,
)
from video_runner.adapters.detectors.darknet.sections import SectionOptions, sections
from video_runner.errors import ConfigurationError


def parse_cfg(text: str, size: tuple[int, int] | None = None) -> Network:
    """Parse a darknet cfg; raises ``ConfigurationError`` on anything it cannot build exactly.

    ``size`` (height, width) replaces the ``[net]`` input size: the weights of a fully
    convolutional network do not depend on it, and the anchors are in input pixels.
    """
    found = sections(text)
    if not found or found[0][0] not in {"net", "network"}:
        raise ConfigurationError("darknet cfg: the first section must be [net]")
    net_options = SectionOptions(0, "net", found[0][1])
    height, width = size or (net_options.integer("height"), net_options.integer("width"))
    net = Net(width=width, height=height, channels=net_options.integer("channels", 3))
    shapes: list[Shape] = []
    layers: list[Layer] = []
    for index, (kind, values) in enumerate(found[1:]):
        options = SectionOptions(index, kind, values)
        previous = shapes[-1] if shapes else Shape(net.channels, net.height, net.width)
        layer = _layer(kind, index, options, previous, shapes)
        layers.append(layer)
        shapes.append(layer.shape)
    if not any(isinstance(layer, Yolo) for layer in layers):
        raise ConfigurationError("darknet cfg: no [yolo] layer, so nothing to detect with")
    return Network(net, tuple(layers))


def _absolute(index: int, reference: int, options: SectionOptions) -> int:
    """A layer reference as darknet reads it: negative counts back from this layer."""
    target = index + reference if reference < 0 else reference
    if not 0 <= target < index:
        raise options.fail(f"refers to layer {reference}, outside 0..{index - 1}")
    return target


def _layer(
    kind: str, index: int, options: SectionOptions, previous: Shape, shapes: list[Shape]
) -> Layer:
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


def _convolutional(options: SectionOptions, previous: Shape, source: int) -> Convolutional:
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


def _route(index: int, options: SectionOptions, shapes: list[Shape]) -> Route:
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


def _yolo(options: SectionOptions, previous: Shape, source: int) -> Yolo:
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
