"""A darknet YOLO network as an ONNX graph, box decoding included.

The graph's output has the layout :class:`~video_runner.adapters.detectors.onnx_yolo.
OnnxYoloDetector` reads from Ultralytics' exports, so one backend serves both: input
``images`` float32 ``[N, 3, H, W]`` (RGB, 0..1), output ``output0`` ``[N, 4 + classes,
anchors]`` with ``cx, cy, w, h`` in input pixels and one score per class. Darknet scores a box
as objectness x class probability; that product is what each class channel holds, so the
detector's threshold and NMS apply to it unchanged.

Batch normalisation is folded into the convolutions (darknet divides by ``sqrt(var) +
1e-6``, not ``sqrt(var + eps)``; the fold uses darknet's form so the numbers match).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from video_runner.adapters.detectors.darknet.layers import (
    Convolutional,
    MaxPool,
    Route,
    Shortcut,
    Upsample,
    Yolo,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy.typing as npt

    from video_runner.adapters.detectors.darknet.layers import Network
    from video_runner.adapters.detectors.darknet.weights import ConvWeights

#: Darknet's batch-norm denominator is ``sqrt(variance) + this``.
DARKNET_NORM_EPSILON = 1e-6
LEAKY_SLOPE = 0.1
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "output0"


def fold_batch_norm(
    weights: ConvWeights,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The kernel and bias of one convolution with its batch normalisation folded in."""
    if weights.norm is None:
        return weights.kernel, weights.biases
    scales, mean, variance = weights.norm
    factor = (scales / (np.sqrt(variance) + DARKNET_NORM_EPSILON)).astype(np.float32)
    kernel = (weights.kernel * factor[:, None, None, None]).astype(np.float32)
    bias = (weights.biases - mean * factor).astype(np.float32)
    return kernel, bias


class _Builder:
    """Accumulates nodes and constants; every name is derived from the layer index."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def constant(self, name: str, value: npt.NDArray[np.generic]) -> str:
        self.constants.append(numpy_helper.from_array(value, name))
        return name

    # onnx.helper.make_node takes its attributes untyped.
    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:  # noqa: ANN401
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def activation(self, kind: str, value: str, prefix: str) -> str:
        if kind == "linear":
            return value
        if kind == "leaky":
            return self.node("LeakyRelu", [value], f"{prefix}_leaky", alpha=LEAKY_SLOPE)
        if kind == "logistic":
            return self.node("Sigmoid", [value], f"{prefix}_logistic")
        if kind == "relu":
            return self.node("Relu", [value], f"{prefix}_relu")
        # mish(x) = x * tanh(softplus(x)); spelled out so opsets before 18 run it.
        soft = self.node("Softplus", [value], f"{prefix}_softplus")
        tanh = self.node("Tanh", [soft], f"{prefix}_tanh")
        return self.node("Mul", [value, tanh], f"{prefix}_mish")


def build_graph(
    network: Network,
    weights: Mapping[int, ConvWeights],
    *,
    expose_layers: bool = False,
) -> onnx.ModelProto:
    """The ONNX model of ``network``; ``expose_layers`` adds each layer's output (for tests)."""
    builder = _Builder()
    outputs: list[str] = []
    heads: list[str] = []
    for index, layer in enumerate(network.layers):
        # A route names its own sources; every other layer reads the one before it.
        source = INPUT_NAME if index == 0 else outputs[index - 1]
        prefix = f"layer{index}"
        if isinstance(layer, Convolutional):
            kernel, bias = fold_batch_norm(weights[index])
            conv = builder.node(
                "Conv",
                [
                    source,
                    builder.constant(f"{prefix}_w", kernel),
                    builder.constant(f"{prefix}_b", bias),
                ],
                f"{prefix}_conv",
                kernel_shape=[layer.size, layer.size],
                strides=[layer.stride, layer.stride],
                pads=[layer.pad] * 4,
                group=layer.groups,
            )
            outputs.append(builder.activation(layer.activation, conv, prefix))
        elif isinstance(layer, MaxPool):
            before = layer.padding // 2
            after = layer.padding - before
            outputs.append(
                builder.node(
                    "MaxPool",
                    [source],
                    f"{prefix}_maxpool",
                    kernel_shape=[layer.size, layer.size],
                    strides=[layer.stride, layer.stride],
                    pads=[before, before, after, after],
                )
            )
        elif isinstance(layer, Route):
            outputs.append(_route(builder, layer, outputs, prefix))
        elif isinstance(layer, Shortcut):
            added = builder.node("Add", [source, outputs[layer.other]], f"{prefix}_add")
            outputs.append(builder.activation(layer.activation, added, prefix))
        elif isinstance(layer, Upsample):
            scales = builder.constant(
                f"{prefix}_scales", np.array([1, 1, layer.stride, layer.stride], np.float32)
            )
            outputs.append(
                builder.node(
                    "Resize",
                    [source, "", scales],
                    f"{prefix}_upsample",
                    mode="nearest",
                    coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor",
                )
            )
        else:
            heads.append(_decode(builder, network, layer, source, prefix))
            outputs.append(source)  # a yolo layer passes its input on, as in darknet
    builder.node("Concat", heads, OUTPUT_NAME, axis=2)
    net = network.net
    graph_outputs = [
        helper.make_tensor_value_info(
            OUTPUT_NAME, TensorProto.FLOAT, ["batch", 4 + network.classes, "anchors"]
        )
    ]
    if expose_layers:
        for index, name in enumerate(outputs):
            exposed = builder.node("Identity", [name], layer_output_name(index))
            shape = network.layers[index].shape
            graph_outputs.append(
                helper.make_tensor_value_info(
                    exposed, TensorProto.FLOAT, ["batch", shape.c, shape.h, shape.w]
                )
            )
    graph = helper.make_graph(
        builder.nodes,
        "darknet-yolo",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", net.channels, net.height, net.width]
            )
        ],
        graph_outputs,
        initializer=builder.constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # onnxruntime 1.17+ reads IR 8; newer onnx writes 10 by default
    onnx.checker.check_model(model)
    return model


def layer_output_name(index: int) -> str:
    """The graph output of layer ``index``, in a model built with ``expose_layers``."""
    return f"layer{index}_out"


def _route(builder: _Builder, layer: Route, outputs: list[str], prefix: str) -> str:
    inputs = [outputs[s] for s in layer.sources]
    joined = (
        inputs[0]
        if len(inputs) == 1
        else builder.node("Concat", inputs, f"{prefix}_concat", axis=1)
    )
    if layer.groups == 1:
        return joined
    width = layer.shape.c  # one group's channels, as the cfg parser worked them out
    start = builder.constant(f"{prefix}_start", np.array([layer.group_id * width], np.int64))
    end = builder.constant(f"{prefix}_end", np.array([(layer.group_id + 1) * width], np.int64))
    axis = builder.constant(f"{prefix}_axis", np.array([1], np.int64))
    return builder.node("Slice", [joined, start, end, axis], f"{prefix}_group")


def _decode(builder: _Builder, network: Network, head: Yolo, source: str, prefix: str) -> str:
    """``[N, A*(5+C), H, W]`` to ``[N, 4+C, A*H*W]``: boxes in input pixels, scores obj x cls."""
    anchors, classes = len(head.anchors), head.classes
    _, height, width = head.shape.c, head.shape.h, head.shape.w
    net = network.net
    const = builder.constant
    shaped = builder.node(
        "Reshape",
        [
            source,
            const(f"{prefix}_shape5", np.array([0, anchors, 5 + classes, height, width], np.int64)),
        ],
        f"{prefix}_split_anchors",
    )

    def channels(name: str, start: int, end: int) -> str:
        return builder.node(
            "Slice",
            [
                shaped,
                const(f"{prefix}_{name}_start", np.array([start], np.int64)),
                const(f"{prefix}_{name}_end", np.array([end], np.int64)),
                const(f"{prefix}_{name}_axis", np.array([2], np.int64)),
            ],
            f"{prefix}_{name}_raw",
        )

    # Centre: (sigmoid(t) * s - (s - 1) / 2 + cell) * stride, darknet's scale_x_y form.
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    grid = np.stack([grid_x, grid_y])[None, None].astype(np.float32)  # [1, 1, 2, H, W]
    stride = np.array([net.width / width, net.height / height], np.float32).reshape(1, 1, 2, 1, 1)
    scale = np.float32(head.scale_x_y)
    offset = grid - np.float32(0.5) * (scale - 1)
    xy_sigmoid = builder.node("Sigmoid", [channels("xy", 0, 2)], f"{prefix}_xy_sigmoid")
    xy_scaled = builder.node(
        "Mul",
        [xy_sigmoid, const(f"{prefix}_xy_scale", np.array(scale * stride, np.float32))],
        f"{prefix}_xy_scaled",
    )
    xy = builder.node(
        "Add",
        [xy_scaled, const(f"{prefix}_xy_offset", np.array(offset * stride, np.float32))],
        f"{prefix}_xy_pixels",
    )
    # Size: exp(t) * anchor, the anchors being in input pixels.
    anchor_sizes = np.array(head.anchors, np.float32).reshape(1, anchors, 2, 1, 1)
    wh_exp = builder.node("Exp", [channels("wh", 2, 4)], f"{prefix}_wh_exp")
    wh = builder.node(
        "Mul", [wh_exp, const(f"{prefix}_anchors", anchor_sizes)], f"{prefix}_wh_pixels"
    )
    objectness = builder.node("Sigmoid", [channels("obj", 4, 5)], f"{prefix}_obj")
    class_prob = builder.node("Sigmoid", [channels("cls", 5, 5 + classes)], f"{prefix}_cls")
    scores = builder.node("Mul", [class_prob, objectness], f"{prefix}_scores")
    joined = builder.node("Concat", [xy, wh, scores], f"{prefix}_boxes", axis=2)
    channel_first = builder.node(
        "Transpose", [joined], f"{prefix}_channel_first", perm=[0, 2, 1, 3, 4]
    )
    return builder.node(
        "Reshape",
        [channel_first, const(f"{prefix}_flat", np.array([0, 4 + classes, -1], np.int64))],
        f"{prefix}_decoded",
    )
