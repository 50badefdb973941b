"""Exports of the final JSON: a valid COCO detection document, and one CSV row per object."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest

from video_runner.domain.exports import CSV_COLUMNS, export, to_coco, to_csv
from video_runner.entrypoints.cli import build_parser

#: The parts of the COCO object-detection format (cocodataset.org, "Data format") that tools
#: such as pycocotools read: required fields and their types.
COCO_SCHEMA = {
    "type": "object",
    "required": ["images", "annotations", "categories"],
    "properties": {
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "file_name", "width", "height"],
                "properties": {
                    "id": {"type": "integer"},
                    "file_name": {"type": "string"},
                    "width": {"type": "integer", "minimum": 1},
                    "height": {"type": "integer", "minimum": 1},
                },
            },
        },
        "annotations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "image_id", "category_id", "bbox", "area", "iscrowd"],
                "properties": {
                    "id": {"type": "integer"},
                    "image_id": {"type": "integer"},
                    "category_id": {"type": "integer"},
                    "bbox": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 4,
                        "maxItems": 4,
                    },
                    "area": {"type": "number", "minimum": 0},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "iscrowd": {"enum": [0, 1]},
                },
            },
        },
        "categories": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
        },
    },
}

FINAL = {
    "event_id": "ev-1",
    "status": "predictable",
    "video": {"width": 640, "height": 272, "fps": 25.0},
    "frames": [
        {"frame_id": 0, "timestamp_ms": 0, "objects": []},
        {
            "frame_id": 5,
            "timestamp_ms": 200,
            "objects": [
                {"class": "person", "box": [10.0, 20.0, 110.0, 220.0], "conf": 0.9},
                {"class": "car", "box": [300.5, 40.0, 400.5, 90.0], "conf": 0.55},
            ],
        },
        {
            "frame_id": 10,
            "timestamp_ms": 400,
            "objects": [{"class": "person", "box": [1.0, 2.0, 3.0, 4.0], "conf": 0.3}],
        },
    ],
}


def test_the_coco_export_is_a_valid_detection_document_with_consistent_ids():
    """Every sampled frame is an image, every object an annotation whose image and category
    exist, with COCO's [x, y, width, height] box and its confidence as score."""
    coco = to_coco(FINAL)
    jsonschema.validate(coco, COCO_SCHEMA)
    assert [image["id"] for image in coco["images"]] == [0, 5, 10]
    assert coco["images"][1]["file_name"] == "frames/ev-1/5.jpg"
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(categories.values()) == ["car", "person"]
    images = {image["id"] for image in coco["images"]}
    assert all(
        a["image_id"] in images and a["category_id"] in categories for a in coco["annotations"]
    )
    person = coco["annotations"][0]
    assert person["bbox"] == [10.0, 20.0, 100.0, 200.0]
    assert person["area"] == 20000.0
    assert person["score"] == 0.9
    assert categories[person["category_id"]] == "person"
    assert len({a["id"] for a in coco["annotations"]}) == 3


def test_the_csv_export_has_a_header_and_one_row_per_object():
    """Three objects in three frames (one frame empty): a header and three rows."""
    rows = list(csv.reader(io.StringIO(to_csv(FINAL))))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [
        ["ev-1", "5", "200", "person", "0.9", "10.0", "20.0", "110.0", "220.0", ""],
        ["ev-1", "5", "200", "car", "0.55", "300.5", "40.0", "400.5", "90.0", ""],
        ["ev-1", "10", "400", "person", "0.3", "1.0", "2.0", "3.0", "4.0", ""],
    ]


def test_csv_cells_a_spreadsheet_would_run_get_a_quote_and_line_breaks_stay_in_the_cell():
    """OWASP's rule: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is prefixed
    with a quote; a CR or LF inside a name is quoted, so it never splits the row."""
    names = [
        '=HYPERLINK("http://x")',
        "+1",
        "-2",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
        "a\rb",
        "c\nd",
        "ok",
    ]
    frame = {
        "frame_id": 0,
        "timestamp_ms": 0,
        "objects": [{"class": n, "conf": 0.5, "box": [0, 0, 1, 1]} for n in names],
    }
    rows = list(csv.reader(io.StringIO(to_csv({**FINAL, "frames": [frame]}), newline="")))
    assert [row[3] for row in rows[1:]] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tTAB",
        "'\rCR",
        "a\rb",
        "c\nd",
        "ok",
    ]


def test_a_video_without_detections_exports_images_and_no_rows():
    """No object anywhere: COCO images with no annotation or category; the CSV header alone."""
    empty = {**FINAL, "frames": [{"frame_id": 0, "timestamp_ms": None, "objects": []}]}
    coco = to_coco(empty)
    jsonschema.validate(coco, COCO_SCHEMA)
    assert (len(coco["images"]), coco["annotations"], coco["categories"]) == (1, [], [])
    assert to_csv(empty).splitlines() == [",".join(CSV_COLUMNS)]


def test_the_result_command_takes_a_format_and_refuses_others():
    """``video-runner result ID --format coco|csv|json`` (json by default); another format is a
    usage error."""
    parser = build_parser()
    assert parser.parse_args(["result", "ev-1"]).format == "json"
    assert parser.parse_args(["result", "ev-1", "--format", "coco"]).format == "coco"
    assert parser.parse_args(["result", "ev-1", "--format", "csv"]).format == "csv"
    with pytest.raises(SystemExit):
        parser.parse_args(["result", "ev-1", "--format", "xml"])


def test_export_of_the_stored_bytes_keeps_json_as_it_is_and_converts_the_others():
    """The final JSON as stored in S3 is passed through untouched; coco and csv are converted."""
    stored = json.dumps(FINAL).encode()
    assert export(stored, "json") == stored.decode()
    assert json.loads(export(stored, "coco")) == to_coco(FINAL)
    assert export(stored, "csv") == to_csv(FINAL)
