"""The final JSON in the formats other tools read: COCO detection results and CSV.

Pure functions of the final JSON (docs/contracts.md, "The final JSON"): each sampled frame is a
COCO image (``id`` = frame_id, its stored JPEG as ``file_name``), each object an annotation with
its box as COCO's ``[x, y, width, height]`` and its confidence as ``score``; the CSV has one row
per object. Frames without objects are COCO images with no annotation and no CSV row. A tracked
video's objects carry their ``track_id`` in both (COCO's video extensions name it so), and its
COCO document lists the ``tracks``. JSON Lines has one line per frame (``frame_line``); the
streaming reader in ``services.result_stream`` writes the same lines without loading the JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

#: The export formats, and the media type each is served with.
FORMATS = {
    "json": "application/json",
    "coco": "application/json",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
}

CSV_COLUMNS = (
    "event_id",
    "frame_id",
    "timestamp_ms",
    "class",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "track_id",
)


def _objects(document: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    for frame in document.get("frames") or []:
        for obj in frame.get("objects") or []:
            yield frame, obj


def to_coco(document: Mapping[str, Any]) -> dict[str, Any]:
    """A COCO object-detection document (``images``, ``annotations``, ``categories``)."""
    event_id = str(document["event_id"])
    video = document.get("video") or {}
    names = sorted({str(obj["class"]) for _, obj in _objects(document)})
    category = {name: number for number, name in enumerate(names, start=1)}
    images = [
        {
            "id": int(frame["frame_id"]),
            "file_name": f"frames/{event_id}/{frame['frame_id']}.jpg",
            "width": video.get("width"),
            "height": video.get("height"),
            "frame_id": int(frame["frame_id"]),
            "timestamp_ms": frame.get("timestamp_ms"),
        }
        for frame in document.get("frames") or []
    ]
    annotations = []
    for number, (frame, obj) in enumerate(_objects(document), start=1):
        x1, y1, x2, y2 = (float(v) for v in obj["box"])
        width, height = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
        annotation = {
            "id": number,
            "image_id": int(frame["frame_id"]),
            "category_id": category[str(obj["class"])],
            "bbox": [x1, y1, width, height],
            "area": width * height,
            "score": float(obj["conf"]),
            "iscrowd": 0,
        }
        if obj.get("track_id") is not None:
            annotation["track_id"] = int(obj["track_id"])
        annotations.append(annotation)
    coco: dict[str, Any] = {
        "info": {"description": f"video-runner detections of {event_id}", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": number, "name": name} for name, number in category.items()],
    }
    if "tracks" in document:
        coco["tracks"] = [
            {
                "id": int(track["track_id"]),
                "category_id": category.get(str(track.get("class"))),
                "first_image_id": track.get("first_frame_id"),
                "last_image_id": track.get("last_frame_id"),
                "frames": track.get("frames"),
                "best_score": track.get("best_conf"),
            }
            for track in document["tracks"]
        ]
    return coco


#: Characters a spreadsheet reads as the start of a formula (OWASP's CSV injection rule).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it and never evaluates: a leading quote disarms it."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def to_csv(document: Mapping[str, Any]) -> str:
    """One row per detected object, with a header row."""
    out = io.StringIO()
    # RFC 4180's CRLF: the writer quotes a field holding any character of its line terminator,
    # so with a bare "\n" a class name holding "\r" would be written unquoted and split the row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    event_id = document["event_id"]
    for frame, obj in _objects(document):
        x1, y1, x2, y2 = obj["box"]
        writer.writerow(
            [
                event_id,
                frame["frame_id"],
                "" if frame.get("timestamp_ms") is None else frame["timestamp_ms"],
                spreadsheet_safe(str(obj["class"])),
                obj["conf"],
                x1,
                y1,
                x2,
                y2,
                "" if obj.get("track_id") is None else obj["track_id"],
            ]
        )
    return out.getvalue()


def frame_line(frame: Mapping[str, Any]) -> str:
    """One frame of the final JSON as a JSON Lines record: frame id, timestamp, objects (and
    the error of a failed frame), compact, with its newline."""
    entry: dict[str, Any] = {
        "frame_id": frame["frame_id"],
        "timestamp_ms": frame.get("timestamp_ms"),
        "objects": frame.get("objects") or [],
    }
    if frame.get("error") is not None:
        entry["error"] = frame["error"]
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def to_jsonl(document: Mapping[str, Any]) -> str:
    """Every frame of a final JSON held in memory, one line each (small results, tests)."""
    return "".join(frame_line(frame) for frame in document.get("frames") or [])


def export(final_json: bytes, fmt: str) -> str:
    """The final JSON (as stored in S3) in ``fmt``: ``json`` as it is, ``coco`` or ``csv``."""
    if fmt == "json":
        return final_json.decode("utf-8")
    document = json.loads(final_json)
    if fmt == "coco":
        return json.dumps(to_coco(document), separators=(",", ":"))
    if fmt == "csv":
        return to_csv(document)
    if fmt == "jsonl":
        return to_jsonl(document)
    raise ValueError(f"unknown export format {fmt!r}: use one of {sorted(FORMATS)}")
