"""The ONNX Runtime detector on tiny hand-built graphs of each ultralytics output layout.

Each graph outputs fixed rows (boxes in model-input pixels plus scores) whose scores are
multiplied by the mean brightness of the input image: a white frame yields every row, a black
frame none. That makes decoding, NMS, the letterbox mapping, regions and batching checkable
with exact expected boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.detections import Detections
from edge.detector import (
    Detector,
    ModelError,
    choose_providers,
    decode_layout,
    letterbox_geometry,
)

NAMES = {0: "cola-330", 1: "cola-440", 2: "hand"}
META = {"names": repr(NAMES), "stride": "32", "task": "detect", "imgsz": "[320, 320]"}

# Rows in model-input pixels (320x320): cx, cy, w, h, then one score per class.
BOXES_SCORES = np.array(
    [
        # cx, cy, w, h, s0, s1, s2
        [160, 160, 100, 50, 0.90, 0.0, 0.0],  # A: kept
        [165, 160, 100, 50, 0.80, 0.0, 0.0],  # overlaps A, same class: suppressed
        [160, 162, 100, 50, 0.0, 0.70, 0.0],  # overlaps A, other class: kept
        [40, 250, 20, 20, 0.0, 0.0, 0.60],  # a hand far away: kept
        [250, 60, 30, 30, 0.10, 0.0, 0.0],  # below threshold
    ],
    dtype=np.float32,
)
# End-to-end rows: x1, y1, x2, y2, score, class (already suppressed by the model).
END2END = np.array(
    [
        [110, 135, 210, 185, 0.90, 0],
        [115, 135, 215, 185, 0.80, 0],  # overlaps the first; an e2e head keeps both
        [30, 240, 50, 260, 0.60, 2],
        [0, 0, 0, 0, 0.0, 0],  # padding row
    ],
    dtype=np.float32,
)


def build_model(
    path: Path,
    rows: np.ndarray,
    *,
    layout: str = "boxes_scores",
    input_shape: Sequence[int | str] = (1, 3, 320, 320),
    metadata: dict[str, str] | None = None,
    input_type: int = TensorProto.FLOAT,
) -> Path:
    """A graph whose output is ``rows`` with the score entries scaled by mean(image)."""
    if layout == "boxes_scores":
        const = rows.T[None]  # [1, 4 + nc, N]
        gate_mask = np.zeros((1, const.shape[1], 1), np.float32)
        gate_mask[:, 4:] = 1
        out_shape: list[int | str] = [input_shape[0], const.shape[1], const.shape[2]]
    else:
        const = rows[None]  # [1, N, 6]
        gate_mask = np.zeros((1, 1, 6), np.float32)
        gate_mask[..., 4] = 1
        out_shape = [input_shape[0], const.shape[1], 6]
    nodes = []
    image = "images"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT))
        image = "images_f"
    nodes += [
        helper.make_node("ReduceMean", [image], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape3"], ["mean"]),  # [B, 1, 1]
        # gate = mean * mask + (1 - mask): scores scaled, boxes untouched
        helper.make_node("Mul", ["mean", "mask"], ["gm"]),
        helper.make_node("Add", ["gm", "inv_mask"], ["gate"]),
        helper.make_node("Mul", ["rows", "gate"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
        numpy_helper.from_array(gate_mask, "mask"),
        numpy_helper.from_array(1 - gate_mask, "inv_mask"),
        numpy_helper.from_array(const.astype(np.float32), "rows"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", input_type, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in (META if metadata is None else metadata).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


WHITE_640x480 = np.full((480, 640, 3), 255, np.uint8)
BLACK_640x480 = np.zeros((480, 640, 3), np.uint8)


def by_class(d: Detections) -> dict[int, list[list[float]]]:
    out: dict[int, list[list[float]]] = {}
    for box, _, cls, _ in d:
        out.setdefault(cls, []).append([round(float(v), 2) for v in box])
    return out


def test_boxes_scores_layout_decode_nms_and_letterbox_mapping(tmp_path: Path) -> None:
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES), providers=["cpu"])
    assert det.names == ["cola-330", "cola-440", "hand"]
    assert det.input_hw == (320, 320)
    assert det.info.batch == 1 and det.info.stride == 32
    (d,) = det.detect([WHITE_640x480])
    # 640x480 -> scale 0.5, 320x240 placed at y 40: input (x, y) -> ((x) * 2, (y - 40) * 2)
    assert by_class(d) == {
        0: [[220.0, 190.0, 420.0, 290.0]],
        1: [[220.0, 194.0, 420.0, 294.0]],
        2: [[60.0, 400.0, 100.0, 440.0]],
    }
    # scores are scaled by the input's mean: 240 white rows and 80 rows of letterbox grey
    mean = (240 + 80 * 114 / 255) / 320
    assert d.confidence[d.class_id == 0].tolist() == pytest.approx([0.9 * mean], rel=1e-4)
    assert np.all(d.tracker_id == -1)
    assert len(det.detect([BLACK_640x480])[0]) == 0


def test_end2end_layout_keeps_model_suppression(tmp_path: Path) -> None:
    path = build_model(tmp_path / "e2e.onnx", END2END, layout="end2end")
    det = Detector(path, providers=["cpu"])
    (d,) = det.detect([WHITE_640x480])
    assert by_class(d) == {
        0: [[220.0, 190.0, 420.0, 290.0], [230.0, 190.0, 430.0, 290.0]],
        2: [[60.0, 400.0, 100.0, 440.0]],
    }


def test_end2end_metadata_breaks_a_shape_tie(tmp_path: Path) -> None:
    # two classes: [B, 6, 6] fits both layouts; the metadata decides
    assert decode_layout([1, 6, 6], 2, end2end=True) == "end2end"
    assert decode_layout([1, 6, 6], 2, end2end=False) == "boxes_scores"
    assert decode_layout([1, 6, 6], 2, end2end=None) == "boxes_scores"
    with pytest.raises(ModelError, match=r"fits neither \[B, 4\+3, N\] nor \[B, N, 6\]"):
        decode_layout([1, 9, 100], 3, end2end=None)


def test_confidence_threshold_and_max_det(tmp_path: Path) -> None:
    path = build_model(tmp_path / "m.onnx", BOXES_SCORES)
    strict = Detector(path, providers=["cpu"], conf_threshold=0.75)
    assert sorted(strict.detect([WHITE_640x480])[0].class_id.tolist()) == [0]
    loose = Detector(path, providers=["cpu"], conf_threshold=0.05, max_det=2)
    d = loose.detect([WHITE_640x480])[0]
    mean = (240 + 80 * 114 / 255) / 320
    assert d.confidence.tolist() == pytest.approx([0.9 * mean, 0.7 * mean], rel=1e-4)


@pytest.mark.parametrize("layout", ["boxes_scores", "end2end"])
def test_per_class_thresholds(tmp_path: Path, layout: str) -> None:
    rows = BOXES_SCORES if layout == "boxes_scores" else END2END
    path = build_model(tmp_path / "m.onnx", rows, layout=layout)
    # White frame: scores scale by about 0.87. Hands are kept from 0.5, everything else at 0.75.
    det = Detector(path, providers=["cpu"], conf_threshold=0.75, class_conf={"hand": 0.5})
    assert sorted(det.detect([WHITE_640x480])[0].class_id.tolist()) == [0, 2]
    with pytest.raises(ModelError, match="person"):
        Detector(path, providers=["cpu"], class_conf={"person": 0.1})


def test_dynamic_batch_runs_frames_together(tmp_path: Path) -> None:
    path = build_model(tmp_path / "dyn.onnx", BOXES_SCORES, input_shape=("batch", 3, 320, 320))
    det = Detector(path, providers=["cpu"], max_batch=4)
    frames = [WHITE_640x480, BLACK_640x480, WHITE_640x480]
    results = det.detect(frames)
    assert [len(r) for r in results] == [3, 0, 3]
    assert det.last_times.runs == 1 and det.last_times.frames == 3
    det2 = Detector(path, providers=["cpu"], max_batch=2)
    assert [len(r) for r in det2.detect(frames)] == [3, 0, 3]
    assert det2.last_times.runs == 2
    assert det2.last_times.inference_ns > 0 and det2.last_times.preprocess_ns > 0


def test_fixed_batch_one_runs_frame_by_frame(tmp_path: Path) -> None:
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES), providers=["cpu"], max_batch=4)
    assert [len(r) for r in det.detect([BLACK_640x480, WHITE_640x480])] == [0, 3]
    assert det.last_times.runs == 2


def test_mixed_frame_sizes_in_one_batch(tmp_path: Path) -> None:
    path = build_model(tmp_path / "dyn.onnx", BOXES_SCORES, input_shape=("batch", 3, 320, 320))
    det = Detector(path, providers=["cpu"])
    tall = np.full((640, 320, 3), 255, np.uint8)  # scale 0.5, 160x320 placed at x 80
    wide, tall_d = det.detect([WHITE_640x480, tall])
    assert by_class(wide)[0] == [[220.0, 190.0, 420.0, 290.0]]
    assert by_class(tall_d)[0] == [[60.0, 270.0, 260.0, 370.0]]
    # boxes are clipped to the frame: the hand lies left of the picture, in the padding
    assert by_class(tall_d)[2] == [[0.0, 480.0, 0.0, 520.0]]


def test_region_crop_maps_back_to_frame_pixels(tmp_path: Path) -> None:
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES), providers=["cpu"])
    frame = np.zeros((1000, 1000, 3), np.uint8)
    frame[200:520, 100:420] = 255  # the region is white, the rest black
    (d,) = det.detect([frame], [(100, 200, 420, 520)])  # 320x320: scale 1, no padding
    assert by_class(d)[0] == [[210.0, 335.0, 310.0, 385.0]]
    assert by_class(d)[2] == [[130.0, 440.0, 150.0, 460.0]]
    # the whole (mostly black) frame is too dark for the gated scores
    assert len(det.detect([frame])[0]) == 0
    with pytest.raises(ValueError, match="outside the 1000x1000 frame"):
        det.detect([frame], [(1200, 0, 1300, 100)])


def test_detect_regions_merges_and_dedupes_overlapping_crops(tmp_path: Path) -> None:
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES), providers=["cpu"])
    frame = np.full((1000, 1000, 3), 255, np.uint8)
    one = det.detect_regions(frame, [(100, 200, 420, 520)])
    same_twice = det.detect_regions(frame, [(100, 200, 420, 520), (100, 200, 420, 520)])
    assert len(one) == 3 and len(same_twice) == 3
    two = det.detect_regions(frame, [(0, 0, 320, 320), (500, 500, 820, 820)])
    assert len(two) == 6
    assert len(det.detect_regions(frame, [])) == 0


def test_float16_input_model(tmp_path: Path) -> None:
    path = build_model(tmp_path / "h.onnx", BOXES_SCORES, input_type=TensorProto.FLOAT16)
    det = Detector(path, providers=["cpu"])
    assert det.info.input_dtype is np.float16
    assert len(det.detect([WHITE_640x480])[0]) == 3


def test_dynamic_size_reads_imgsz_and_accepts_an_override(tmp_path: Path) -> None:
    meta = dict(META, imgsz="[256, 320]")
    path = build_model(
        tmp_path / "d.onnx", BOXES_SCORES, input_shape=(1, 3, "h", "w"), metadata=meta
    )
    assert Detector(path, providers=["cpu"]).input_hw == (256, 320)
    square = Detector(path, providers=["cpu"], input_hw=(640, 640), rect=False)
    assert square.input_hw == (640, 640)
    (d,) = square.detect([WHITE_640x480])  # scale 1, 640x480 at y 80 of 640x640
    assert by_class(d)[0] == [[110.0, 55.0, 210.0, 105.0]]
    assert square.last_input().shape == (1, 3, 640, 640)
    # rect (default): the input shrinks to 640x480, a multiple of the stride; no padding
    rect = Detector(path, providers=["cpu"], input_hw=(640, 640))
    (d,) = rect.detect([WHITE_640x480])
    assert by_class(d)[0] == [[110.0, 135.0, 210.0, 185.0]]
    assert rect.last_input().shape == (1, 3, 480, 640)
    with pytest.raises(ModelError, match="not a multiple of the model stride 32"):
        Detector(path, providers=["cpu"], input_hw=(300, 320))


@pytest.mark.parametrize(
    ("input_shape", "metadata", "kwargs", "message"),
    [
        ((1, 3, 320, 320), {"task": "detect"}, {}, "no 'names' metadata"),
        ((1, 3, 320, 320), dict(META, names="{0: 'a', 2: 'b'}"), {}, "without gaps"),
        ((1, 3, 320, 320), dict(META, names="not python"), {}, "'names' is not a Python literal"),
        ((1, 3, 320, 320), dict(META, task="segment"), {}, "task is 'segment'"),
        ((1, 3, "h", "w"), {"names": repr(NAMES)}, {}, "dynamic height/width and no 'imgsz'"),
        ((1, 3, 320, 320), META, {"input_hw": (640, 640)}, "fixed at 320x320"),
        ((1, 1, 320, 320), META, {}, r"expected an input of shape \[B, 3, H, W\]"),
    ],
)  # fmt: skip
def test_model_errors_name_the_file_and_what_is_missing(
    tmp_path: Path,
    input_shape: tuple[int | str, ...],
    metadata: dict[str, str],
    kwargs: dict[str, object],
    message: str,
) -> None:
    path = build_model(tmp_path / "bad.onnx", BOXES_SCORES, input_shape=input_shape,
                       metadata=metadata)  # fmt: skip
    with pytest.raises(ModelError, match=message) as info:
        Detector(path, providers=["cpu"], **kwargs)  # type: ignore[arg-type]
    assert "bad.onnx" in str(info.value)


def test_names_that_do_not_match_the_output(tmp_path: Path) -> None:
    meta = dict(META, names="{0: 'a', 1: 'b', 2: 'c', 3: 'd'}")
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES, metadata=meta), providers=["cpu"])
    with pytest.raises(ModelError, match=r"fits neither \[B, 4\+4, N\]"):
        det.detect([WHITE_640x480])


def test_missing_and_unloadable_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nothing\.onnx: detector model not found"):
        Detector(tmp_path / "nothing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.onnx: onnxruntime cannot load"):
        Detector(junk, providers=["cpu"])


def test_provider_choice_follows_config_order_and_availability() -> None:
    avail = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["tensorrt", "cuda", "cpu"], avail) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["cpu", "cuda"], avail) == [
        "CPUExecutionProvider",
        "CUDAExecutionProvider",
    ]
    with pytest.raises(ModelError, match=r"add 'cpu' to detector\.providers"):
        choose_providers(["openvino"], avail)
    with pytest.raises(ValueError, match="unknown execution provider"):
        choose_providers(["tpu"], avail)


def test_bad_frames_are_refused_with_the_shape(tmp_path: Path) -> None:
    det = Detector(build_model(tmp_path / "m.onnx", BOXES_SCORES), providers=["cpu"])
    with pytest.raises(
        ValueError, match=r"BGR uint8 frame of shape \[H, W, 3\], got uint8 \[4, 4\]"
    ):
        det.detect([np.zeros((4, 4), np.uint8)])
    with pytest.raises(ValueError, match="got 1 frames but 2 regions"):
        det.detect([WHITE_640x480], [None, None])


@pytest.mark.parametrize(
    ("src_hw", "dst_hw", "expected"),
    [
        ((480, 640), (320, 320), (0.5, 0, 40, 320, 240)),
        ((720, 1280), (320, 320), (0.25, 0, 70, 320, 180)),
        ((1080, 1920), (320, 320), (1 / 6, 0, 70, 320, 180)),
        ((100, 100), (320, 320), (3.2, 0, 0, 320, 320)),
        ((333, 500), (320, 320), (0.64, 0, 53, 320, 213)),
    ],
)
def test_letterbox_geometry_matches_ultralytics(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], expected: tuple[float, int, int, int, int]
) -> None:
    g = letterbox_geometry(src_hw, dst_hw)
    assert (g.scale, g.pad_x, g.pad_y, g.new_w, g.new_h) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("src_hw", "expected_in_hw", "expected_pad"),
    [((360, 640), (192, 320), (0, 6)), ((720, 1280), (192, 320), (0, 6)),
     ((480, 640), (256, 320), (0, 8)), ((640, 480), (320, 256), (8, 0)),
     ((320, 320), (320, 320), (0, 0))],
)  # fmt: skip
def test_rect_letterbox_shrinks_to_a_stride_multiple(
    src_hw: tuple[int, int], expected_in_hw: tuple[int, int], expected_pad: tuple[int, int]
) -> None:
    g = letterbox_geometry(src_hw, (320, 320), stride=32)
    assert (g.in_h, g.in_w) == expected_in_hw
    assert (g.pad_x, g.pad_y) == expected_pad


def test_rect_batch_of_mixed_aspects_uses_the_full_input(tmp_path: Path) -> None:
    path = build_model(
        tmp_path / "d.onnx", BOXES_SCORES, input_shape=("batch", 3, "h", "w"), metadata=META
    )
    det = Detector(path, providers=["cpu"])
    det.detect([WHITE_640x480, WHITE_640x480])
    assert det.last_input().shape == (4, 3, 256, 320)
    tall = np.full((640, 320, 3), 255, np.uint8)
    wide, tall_d = det.detect([WHITE_640x480, tall])
    assert det.last_input().shape == (4, 3, 320, 320)
    det.detect([WHITE_640x480])
    assert det.last_input().shape == (4, 3, 256, 320)
    assert by_class(wide)[0] == [[220.0, 190.0, 420.0, 290.0]]
    assert by_class(tall_d)[0] == [[60.0, 270.0, 260.0, 370.0]]
