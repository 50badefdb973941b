"""A plain NumPy forward pass of darknet's layers, written from darknet's C, for the tests.

Deliberately naive (loops over kernel offsets, batch norm as darknet applies it, unfolded), so
it shares nothing with the ONNX graph builder but the parsed cfg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from video_runner.adapters.detectors.darknet.layers import (
    Convolutional,
    MaxPool,
    Route,
    Shortcut,
    Upsample,
    Yolo,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    from video_runner.adapters.detectors.darknet.layers import Network
    from video_runner.adapters.detectors.darknet.weights import ConvWeights


def _activate(kind: str, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if kind == "leaky":
        return np.where(x > 0, x, 0.1 * x)
    if kind == "logistic":
        return 1 / (1 + np.exp(-x))
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "mish":
        return x * np.tanh(np.log1p(np.exp(x)))
    return x


def _conv(
    x: npt.NDArray[np.float64], layer: Convolutional, w: ConvWeights
) -> npt.NDArray[np.float64]:
    n, c = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), (layer.pad, layer.pad), (layer.pad, layer.pad)))
    out_h, out_w = layer.shape.h, layer.shape.w
    per_group_in, per_group_out = c // layer.groups, layer.filters // layer.groups
    out = np.zeros((n, layer.filters, out_h, out_w))
    kernel = w.kernel.astype(np.float64)
    for g in range(layer.groups):
        part = padded[:, g * per_group_in : (g + 1) * per_group_in]
        k = kernel[g * per_group_out : (g + 1) * per_group_out]
        for dy in range(layer.size):
            for dx in range(layer.size):
                window = part[
                    :,
                    :,
                    dy : dy + layer.stride * out_h : layer.stride,
                    dx : dx + layer.stride * out_w : layer.stride,
                ]
                out[:, g * per_group_out : (g + 1) * per_group_out] += np.einsum(
                    "nchw,fc->nfhw", window, k[:, :, dy, dx]
                )
    if w.norm is not None:
        scales, mean, variance = (a.astype(np.float64)[None, :, None, None] for a in w.norm)
        out = (out - mean) / (np.sqrt(variance) + 1e-6) * scales
    out += w.biases.astype(np.float64)[None, :, None, None]
    return _activate(layer.activation, out)


def _maxpool(x: npt.NDArray[np.float64], layer: MaxPool) -> npt.NDArray[np.float64]:
    before = layer.padding // 2
    after = layer.padding - before
    padded = np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)), constant_values=-np.inf)
    out_h, out_w = layer.shape.h, layer.shape.w
    out = np.full((x.shape[0], x.shape[1], out_h, out_w), -np.inf)
    for dy in range(layer.size):
        for dx in range(layer.size):
            window = padded[
                :,
                :,
                dy : dy + layer.stride * out_h : layer.stride,
                dx : dx + layer.stride * out_w : layer.stride,
            ][:, :, :out_h, :out_w]
            out = np.maximum(out, window)
    return out


def _yolo(
    x: npt.NDArray[np.float64], head: Yolo, net_h: int, net_w: int
) -> npt.NDArray[np.float64]:
    """Darknet's get_yolo_box and class scores, per anchor, cell by cell."""
    n, _, h, w = x.shape
    a = len(head.anchors)
    x = x.reshape(n, a, 5 + head.classes, h, w)
    rows = []
    for anchor in range(a):
        for cy in range(h):
            for cx in range(w):
                t = x[:, anchor, :, cy, cx]
                sig = 1 / (1 + np.exp(-t))
                s = head.scale_x_y
                bx = (cx + sig[:, 0] * s - 0.5 * (s - 1)) / w * net_w
                by = (cy + sig[:, 1] * s - 0.5 * (s - 1)) / h * net_h
                bw = np.exp(t[:, 2]) * head.anchors[anchor][0]
                bh = np.exp(t[:, 3]) * head.anchors[anchor][1]
                scores = sig[:, 5:] * sig[:, 4:5]
                rows.append(np.concatenate([np.stack([bx, by, bw, bh], 1), scores], 1))
    return np.stack(rows, axis=2)  # [N, 4 + C, anchors], anchor-major like the graph


def forward(
    network: Network, weights: dict[int, ConvWeights], images: npt.NDArray[np.float32]
) -> tuple[list[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Every layer's output, and the decoded detections of all heads concatenated."""
    outputs: list[npt.NDArray[np.float64]] = []
    decoded = []
    x = images.astype(np.float64)
    for index, layer in enumerate(network.layers):
        source = x if index == 0 else outputs[-1]
        if isinstance(layer, Convolutional):
            y = _conv(source, layer, weights[index])
        elif isinstance(layer, MaxPool):
            y = _maxpool(source, layer)
        elif isinstance(layer, Route):
            joined = np.concatenate([outputs[s] for s in layer.sources], axis=1)
            width = joined.shape[1] // layer.groups
            y = joined[:, layer.group_id * width : (layer.group_id + 1) * width]
        elif isinstance(layer, Shortcut):
            y = _activate(layer.activation, source + outputs[layer.other])
        elif isinstance(layer, Upsample):
            y = source.repeat(layer.stride, axis=2).repeat(layer.stride, axis=3)
        else:
            decoded.append(_yolo(source, layer, network.net.height, network.net.width))
            y = source
        outputs.append(y)
    return outputs, np.concatenate(decoded, axis=2)
