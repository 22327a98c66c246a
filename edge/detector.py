"""Object detection on ONNX Runtime for ultralytics-exported YOLO models.

``Detector`` reads what it needs from the model itself (input size, stride, class names from
the ONNX metadata), letterboxes frames into one preallocated input buffer, runs several frames
per ``session.run`` when the model has a dynamic batch axis, decodes either ultralytics output
layout with numpy and applies class-aware NMS with OpenCV. Results are ``Detections`` in pixels
of the original frame (or of the full frame when a region of it was detected).

Output layouts:

* ``[B, 4 + nc, N]`` (YOLOv5u, v8, 11): rows are cx, cy, w, h in input pixels, then one score
  per class; needs NMS.
* ``[B, N, 6]`` (end-to-end heads of YOLOv10 / yolo26, and exports with ``nms=True``): rows are
  x1, y1, x2, y2, score, class in input pixels; already suppressed.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.detections import Detections

if TYPE_CHECKING:
    import onnxruntime as ort

    from walkout.schema import Detector as DetectorConfig

log = logging.getLogger(__name__)

__all__ = [
    "PROVIDER_NAMES",
    "Detector",
    "DetectorBackend",
    "Letterbox",
    "ModelError",
    "ModelInfo",
    "Region",
    "StageTimes",
    "letterbox_geometry",
    "letterbox_into",
    "preprocess",
]

PROVIDER_NAMES: Final[dict[str, str]] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PAD_VALUE: Final = 114  # ultralytics' letterbox grey
Layout = Literal["boxes_scores", "end2end"]
# (x1, y1, x2, y2) in integer pixels of the frame
Region = tuple[int, int, int, int]
Frame = npt.NDArray[np.uint8]


class ModelError(Exception):
    """The model file is missing, unreadable, or lacks what the detector needs."""


class DetectorBackend(Protocol):
    """What the edge stages need from a detector; ``Detector`` is the ONNX Runtime one."""

    @property
    def names(self) -> list[str]: ...

    def detect(
        self, frames: Sequence[Frame], regions: Sequence[Region | None] | None = None
    ) -> list[Detections]: ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was read from the model file."""

    path: Path
    names: list[str]
    input_hw: tuple[int, int]
    dynamic_hw: bool
    batch: int | None  # None: dynamic batch axis
    stride: int | None
    input_name: str
    input_dtype: type[np.floating[Any]]
    output_name: str
    end2end: bool | None  # None: not stated in the metadata; decided from the output shape


@dataclass(slots=True)
class StageTimes:
    """Wall time of the last ``detect`` call by stage, in nanoseconds."""

    preprocess_ns: int = 0
    inference_ns: int = 0
    postprocess_ns: int = 0
    frames: int = 0
    runs: int = 0


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How one frame (or region) was placed into the model input."""

    scale: float
    pad_x: int
    pad_y: int
    new_w: int
    new_h: int
    src_w: int
    src_h: int
    in_w: int  # model input width and height this placement is for
    in_h: int


def letterbox_geometry(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], stride: int | None = None
) -> Letterbox:
    """Scale to fit ``dst_hw`` keeping the aspect ratio, centred, as ultralytics' LetterBox.

    With ``stride`` the input shrinks to the smallest multiple of the stride around the scaled
    image (ultralytics' ``auto`` letterbox: 640x360 becomes 320x192, not 320x320), for models
    whose height and width are dynamic.
    """
    src_h, src_w = src_hw
    dst_h, dst_w = dst_hw
    scale = min(dst_h / src_h, dst_w / src_w)
    new_w = max(1, min(dst_w, round(src_w * scale)))
    new_h = max(1, min(dst_h, round(src_h * scale)))
    if stride:
        dst_w = new_w + (dst_w - new_w) % stride
        dst_h = new_h + (dst_h - new_h) % stride
    pad_x = round((dst_w - new_w) / 2 - 0.1)
    pad_y = round((dst_h - new_h) / 2 - 0.1)
    return Letterbox(scale, pad_x, pad_y, new_w, new_h, src_w, src_h, dst_w, dst_h)


def _parse_literal(path: Path, key: str, raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(
            f"{path}: metadata '{key}' is not a Python literal ({raw[:60]!r}): {exc}; "
            "re-export the model with ultralytics"
        ) from exc


def _parse_names(path: Path, raw: str | None) -> list[str]:
    if raw is None:
        raise ModelError(
            f"{path}: the model has no 'names' metadata (class names); re-export it with "
            "ultralytics (`walkout train` does) or add a 'names' entry such as "
            "\"{0: 'person', 1: 'hand'}\" to the ONNX metadata_props"
        )
    value = _parse_literal(path, "names", raw)
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}: metadata 'names' has non-integer keys: {exc}") from exc
        if ids != list(range(len(ids))):
            raise ModelError(
                f"{path}: metadata 'names' must number classes 0..{len(ids) - 1} without gaps, "
                f"got ids {ids[:10]}"
            )
        return [str(value[k] if k in value else value[str(k)]) for k in ids]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ModelError(
        f"{path}: metadata 'names' must be a dict or list of class names, got "
        f"{type(value).__name__}"
    )


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def read_model_info(
    session: ort.InferenceSession, path: Path, input_hw: tuple[int, int] | None = None
) -> ModelInfo:
    """Input size, batch, stride, names and layout hints from a loaded model."""
    meta: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
    task = meta.get("task")
    if task is not None and task != "detect":
        raise ModelError(f"{path}: model task is {task!r}; the detector runs 'detect' models")
    names = _parse_names(path, meta.get("names"))
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one image input, got {len(inputs)}")
    inp = inputs[0]
    shape = list(inp.shape)
    if len(shape) != 4 or _dim(shape[1]) not in (None, 3):
        raise ModelError(f"{path}: expected an input of shape [B, 3, H, W], got {shape}")
    dtype: type[np.floating[Any]]
    if inp.type == "tensor(float)":
        dtype = np.float32
    elif inp.type == "tensor(float16)":
        dtype = np.float16
    else:
        raise ModelError(f"{path}: expected a float or float16 input, got {inp.type}")
    stride = None
    if "stride" in meta:
        stride_value = _parse_literal(path, "stride", meta["stride"])
        stride = int(max(stride_value)) if isinstance(stride_value, list) else int(stride_value)
    graph_h, graph_w = _dim(shape[2]), _dim(shape[3])
    dynamic_hw = graph_h is None or graph_w is None
    if not dynamic_hw:
        assert graph_h is not None and graph_w is not None
        if input_hw is not None and tuple(input_hw) != (graph_h, graph_w):
            raise ModelError(
                f"{path}: the model's input is fixed at {graph_h}x{graph_w}; "
                f"input size {input_hw[0]}x{input_hw[1]} was asked for. Re-export it with "
                "dynamic=True or drop the input size setting"
            )
        hw = (graph_h, graph_w)
    elif input_hw is not None:
        hw = (int(input_hw[0]), int(input_hw[1]))
    elif "imgsz" in meta:
        imgsz = _parse_literal(path, "imgsz", meta["imgsz"])
        sizes = [int(imgsz)] * 2 if isinstance(imgsz, (int, float)) else [int(v) for v in imgsz]
        if len(sizes) != 2:
            raise ModelError(f"{path}: metadata 'imgsz' must be [h, w], got {meta['imgsz']!r}")
        hw = (sizes[0], sizes[1])
    else:
        raise ModelError(
            f"{path}: the model has dynamic height/width and no 'imgsz' metadata; "
            "pass an input size (input_hw=(h, w)) or re-export with a fixed imgsz"
        )
    if dynamic_hw and stride is not None and (hw[0] % stride or hw[1] % stride):
        raise ModelError(
            f"{path}: input size {hw[0]}x{hw[1]} is not a multiple of the model stride {stride}"
        )
    e2e_raw = meta.get("end2end")
    end2end = None if e2e_raw is None else e2e_raw.strip().lower() == "true"
    return ModelInfo(
        path=path,
        names=names,
        input_hw=hw,
        dynamic_hw=dynamic_hw,
        batch=_dim(shape[0]),
        stride=stride,
        input_name=inp.name,
        input_dtype=dtype,
        output_name=session.get_outputs()[0].name,
        end2end=end2end,
    )


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """ORT provider names from config names, in config order, limited to what is installed."""
    unknown = [p for p in wanted if p not in PROVIDER_NAMES]
    if unknown:
        raise ValueError(
            f"unknown execution provider(s) {unknown}; choose from {list(PROVIDER_NAMES)}"
        )
    chosen = [PROVIDER_NAMES[p] for p in wanted if PROVIDER_NAMES[p] in available]
    if not chosen:
        raise ModelError(
            f"none of the configured execution providers {list(wanted)} is available in this "
            f"onnxruntime build (it has {list(available)}); add 'cpu' to detector.providers"
        )
    return chosen


def decode_layout(output_shape: Sequence[int], num_classes: int, end2end: bool | None) -> Layout:
    """Which of the two ultralytics layouts an output ``[B, a, b]`` is."""
    if len(output_shape) != 3:
        raise ModelError(f"expected a 3-d detection output, got shape {list(output_shape)}")
    _, a, b = output_shape
    fits_scores = a == 4 + num_classes
    fits_e2e = b == 6
    if fits_scores and fits_e2e and end2end is not None:
        return "end2end" if end2end else "boxes_scores"
    if fits_scores:
        return "boxes_scores"
    if fits_e2e:
        return "end2end"
    raise ModelError(
        f"detection output of shape {list(output_shape)} fits neither [B, 4+{num_classes}, N] "
        "nor [B, N, 6]; is the metadata 'names' list right for this model?"
    )


def decode_boxes_scores(
    out: npt.NDArray[np.floating[Any]], conf_threshold: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """One image of ``[4 + nc, N]``: xyxy, best score and class of boxes above threshold."""
    scores = out[4:]
    best = scores.max(axis=0)
    keep = np.flatnonzero(best > conf_threshold)
    if keep.size == 0:
        return (np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int32))
    cls = scores[:, keep].argmax(axis=0).astype(np.int32)
    cx, cy, w, h = (out[i, keep].astype(np.float32) for i in range(4))
    hw, hh = w * 0.5, h * 0.5
    xyxy = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    return xyxy, best[keep].astype(np.float32), cls


def decode_end2end(
    out: npt.NDArray[np.floating[Any]], conf_threshold: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """One image of ``[N, 6]`` (x1, y1, x2, y2, score, class): rows above threshold."""
    keep = out[:, 4] > conf_threshold
    rows = out[keep].astype(np.float32)
    return rows[:, :4], rows[:, 4], np.rint(rows[:, 5]).astype(np.int32)


def nms_per_class(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_id: npt.NDArray[np.int32],
    iou_threshold: float,
    max_det: int,
) -> npt.NDArray[np.intp]:
    """Indices kept by class-aware NMS, best score first."""
    if len(scores) == 0:
        return np.empty(0, dtype=np.intp)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    # OpenCV accepts numpy arrays here; its stubs only name sequences. Its top_k cuts the
    # candidates before suppression, so max_det is applied to what survives instead.
    nms: Any = cv2.dnn.NMSBoxesBatched
    kept = np.asarray(nms(xywh, scores, class_id, 0.0, iou_threshold), dtype=np.intp).reshape(-1)
    if len(kept) > 1:
        kept = kept[np.argsort(-scores[kept], kind="stable")]
    return kept[:max_det]


class Detector:
    """An ultralytics YOLO detection model on ONNX Runtime.

    ``detect(frames)`` takes BGR uint8 frames (as OpenCV decodes them) and returns one
    ``Detections`` per frame in that frame's pixels. ``regions[i]``, when given, restricts
    frame i to a crop ``(x1, y1, x2, y2)``; boxes still come back in full-frame pixels.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        providers: Sequence[str] = ("tensorrt", "cuda", "openvino", "cpu"),
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        conf_threshold: float = 0.25,
        class_conf: Mapping[str, float] | None = None,
        iou_threshold: float = 0.5,
        max_batch: int = 4,
        max_det: int = 300,
        input_hw: tuple[int, int] | None = None,
        rect: bool = True,
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(
                f"{path}: detector model not found; train one with `walkout train` or set "
                "detector.model in the store config"
            )
        if not 0.0 <= conf_threshold <= 1.0 or not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(
                f"conf_threshold {conf_threshold} and iou_threshold {iou_threshold} must lie "
                "in [0, 1]"
            )
        if max_batch < 1 or max_det < 1:
            raise ValueError(f"max_batch ({max_batch}) and max_det ({max_det}) must be >= 1")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        chosen = choose_providers(providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from exc
        self.info = read_model_info(self._session, path, input_hw)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_det = max_det
        # Per-class score thresholds: decode at the lowest, then keep each class at its own.
        self._class_thr: npt.NDArray[np.float32] | None = None
        if class_conf:
            unknown = sorted(set(class_conf) - set(self.names))
            if unknown:
                raise ModelError(
                    f"{path}: detector.class_conf names {unknown}, which the model does not "
                    f"have; its classes are {self.names}"
                )
            thr = np.full(len(self.names), conf_threshold, np.float32)
            for name, value in class_conf.items():
                thr[self.names.index(name)] = value
            self._class_thr = thr
        self.providers: list[str] = list(self._session.get_providers())
        # A fixed batch axis of 1 runs frame by frame; a fixed batch k > 1 is padded to k.
        self.batch_size = max_batch if self.info.batch is None else self.info.batch
        h, w = self.info.input_hw
        # Dynamic height/width: run each frame at the smallest stride multiple around it.
        self.rect_stride = self.info.stride if rect and self.info.dynamic_hw else None
        # One preallocated input per input shape seen (a camera keeps its shape).
        self._buffers: dict[tuple[int, int], npt.NDArray[np.floating[Any]]] = {}
        self._slot_geometry: dict[tuple[int, int], list[Letterbox | None]] = {}
        self._last_key = (0, 0)
        self._layout: Layout | None = None
        self.last_times = StageTimes()
        log.info(
            "detector %s: input %dx%d, batch %s, %d classes, providers %s",
            path.name,
            h,
            w,
            self.info.batch or f"dynamic (runs {self.batch_size})",
            len(self.names),
            self.providers,
        )

    @classmethod
    def from_config(
        cls, cfg: DetectorConfig, base_dir: str | Path | None = None, **overrides: Any
    ) -> Detector:
        """Build from the store config's ``detector`` section; a relative model path is
        resolved against ``base_dir`` (the repository or deployment root)."""
        model = Path(cfg.model)
        if not model.is_absolute() and base_dir is not None:
            model = Path(base_dir) / model
        kwargs: dict[str, Any] = dict(
            providers=cfg.providers,
            intra_op_threads=cfg.intra_op_threads,
            inter_op_threads=cfg.inter_op_threads,
            conf_threshold=cfg.conf_threshold,
            class_conf=dict(cfg.class_conf),
            iou_threshold=cfg.iou_threshold,
            max_batch=cfg.max_batch,
        )
        kwargs.update(overrides)
        return cls(model, **kwargs)

    @property
    def names(self) -> list[str]:
        return self.info.names

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.info.input_hw

    def class_id(self, name: str) -> int:
        """The class id of a class name; KeyError naming the known classes otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"class {name!r} is not in the model's names {self.names}") from None

    def detect_one(self, frame: Frame, region: Region | None = None) -> Detections:
        return self.detect([frame], [region])[0]

    def detect_regions(self, frame: Frame, regions: Sequence[Region]) -> Detections:
        """Detect in several crops of one frame; boxes merged in frame pixels, duplicates
        where crops overlap removed by class-aware NMS."""
        if not regions:
            return Detections.empty()
        parts = self.detect([frame] * len(regions), list(regions))
        merged = Detections.merge(parts)
        if len(regions) == 1 or len(merged) == 0:
            return merged
        keep = nms_per_class(
            merged.xyxy, merged.confidence, merged.class_id, self.iou_threshold, self.max_det
        )
        return merged[keep]

    def detect(
        self, frames: Sequence[Frame], regions: Sequence[Region | None] | None = None
    ) -> list[Detections]:
        if regions is not None and len(regions) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(regions)} regions")
        times = StageTimes(frames=len(frames))
        results: list[Detections] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            chunk_regions = (
                regions[start : start + self.batch_size] if regions else [None] * len(chunk)
            )
            results.extend(self._run_chunk(chunk, chunk_regions, times))
        self.last_times = times
        return results

    def _run_chunk(
        self, frames: Sequence[Frame], regions: Sequence[Region | None], times: StageTimes
    ) -> list[Detections]:
        t0 = time.perf_counter_ns()
        images: list[Frame] = []
        offsets: list[tuple[int, int]] = []
        for frame, region in zip(frames, regions):
            image, offset = _crop(frame, region)
            images.append(image)
            offsets.append(offset)
        geoms = [
            letterbox_geometry(_check_frame(im), self.input_hw, self.rect_stride) for im in images
        ]
        if len({(g.in_h, g.in_w) for g in geoms}) > 1:  # mixed shapes share the full input
            geoms = [letterbox_geometry(_check_frame(im), self.input_hw) for im in images]
        buffer = self._buffer_for(geoms[0].in_h, geoms[0].in_w)
        self._last_key = (geoms[0].in_h, geoms[0].in_w)
        cached = self._slot_geometry[(geoms[0].in_h, geoms[0].in_w)]
        for slot, (image, geom) in enumerate(zip(images, geoms)):
            # the grey border depends only on the geometry: repaint it when that changes
            letterbox_into(image, buffer[slot], geom=geom, fill=cached[slot] != geom)
            cached[slot] = geom
        n_run = len(frames) if self.info.batch is None else self.batch_size
        t1 = time.perf_counter_ns()
        out = self._session.run([self.info.output_name], {self.info.input_name: buffer[:n_run]})
        t2 = time.perf_counter_ns()
        pred = np.asarray(out[0])
        if self._layout is None:
            self._layout = decode_layout(pred.shape, len(self.names), self.info.end2end)
        results = [self._postprocess(pred[i], geoms[i], offsets[i]) for i in range(len(frames))]
        t3 = time.perf_counter_ns()
        times.preprocess_ns += t1 - t0
        times.inference_ns += t2 - t1
        times.postprocess_ns += t3 - t2
        times.runs += 1
        return results

    def _buffer_for(self, h: int, w: int) -> npt.NDArray[np.floating[Any]]:
        buffer = self._buffers.get((h, w))
        if buffer is None:
            if len(self._buffers) >= 16:  # bounded: many shapes would mean many regions sizes
                self._buffers.clear()
                self._slot_geometry.clear()
            buffer = np.empty((self.batch_size, 3, h, w), dtype=self.info.input_dtype)
            self._buffers[(h, w)] = buffer
            self._slot_geometry[(h, w)] = [None] * self.batch_size
        return buffer

    def last_input(self) -> npt.NDArray[np.floating[Any]]:
        """The model input of the last run (for benchmarks against a bare ``session.run``)."""
        if self._last_key not in self._buffers:
            raise RuntimeError("no frame has been detected yet")
        return self._buffers[self._last_key]

    @property
    def session(self) -> ort.InferenceSession:
        """The ONNX Runtime session (read-only use: benchmarks, diagnostics)."""
        return self._session

    def _postprocess(
        self, pred: npt.NDArray[np.floating[Any]], geom: Letterbox, offset: tuple[int, int]
    ) -> Detections:
        thr = self.conf_threshold if self._class_thr is None else float(self._class_thr.min())
        if self._layout == "boxes_scores":
            xyxy, conf, cls = decode_boxes_scores(pred, thr)
            if self._class_thr is not None and len(conf):
                own = conf >= self._class_thr[np.clip(cls, 0, len(self._class_thr) - 1)]
                xyxy, conf, cls = xyxy[own], conf[own], cls[own]
            if len(conf):
                keep = nms_per_class(xyxy, conf, cls, self.iou_threshold, self.max_det)
                xyxy, conf, cls = xyxy[keep], conf[keep], cls[keep]
        else:
            xyxy, conf, cls = decode_end2end(pred, thr)
            if self._class_thr is not None and len(conf):
                own = conf >= self._class_thr[np.clip(cls, 0, len(self._class_thr) - 1)]
                xyxy, conf, cls = xyxy[own], conf[own], cls[own]
            if len(conf) > self.max_det:
                top = np.argsort(-conf, kind="stable")[: self.max_det]
                xyxy, conf, cls = xyxy[top], conf[top], cls[top]
        if len(conf) == 0:
            return Detections.empty()
        bad = (cls < 0) | (cls >= len(self.names))
        if bad.any():
            raise ModelError(
                f"{self.info.path}: the model produced class ids {sorted(set(cls[bad].tolist()))} "
                f"outside its {len(self.names)} names"
            )
        # input pixels -> source pixels -> frame pixels
        xyxy -= np.array([geom.pad_x, geom.pad_y, geom.pad_x, geom.pad_y], dtype=np.float32)
        xyxy *= np.float32(1.0 / geom.scale)
        np.clip(xyxy[:, 0::2], 0, geom.src_w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, geom.src_h, out=xyxy[:, 1::2])
        if offset != (0, 0):
            xyxy += np.array([offset[0], offset[1], offset[0], offset[1]], dtype=np.float32)
        return Detections(xyxy, conf, cls)


def _check_frame(image: Frame) -> tuple[int, int]:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected a BGR uint8 frame of shape [H, W, 3], got {image.dtype} {list(image.shape)}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot detect in an empty image of shape {list(image.shape)}")
    return int(image.shape[0]), int(image.shape[1])


def letterbox_into(
    image: Frame,
    dst: npt.NDArray[np.floating[Any]],
    fill: bool = True,
    geom: Letterbox | None = None,
) -> Letterbox:
    """Letterbox BGR uint8 ``image`` into ``dst`` ``[3, H, W]`` as RGB scaled to [0, 1].

    ``fill=False`` skips painting the grey border, for a buffer that already holds it for the
    same geometry.
    """
    src_hw = _check_frame(image)
    if geom is None:
        geom = letterbox_geometry(src_hw, (int(dst.shape[1]), int(dst.shape[2])))
    elif (geom.in_h, geom.in_w) != dst.shape[1:] or (geom.src_h, geom.src_w) != src_hw:
        raise ValueError(f"letterbox geometry {geom} does not fit {src_hw} into {dst.shape}")
    if fill:
        dst.fill(PAD_VALUE / 255.0)
    if (geom.new_w, geom.new_h) != (geom.src_w, geom.src_h):
        image = np.asarray(
            cv2.resize(image, (geom.new_w, geom.new_h), interpolation=cv2.INTER_LINEAR),
            dtype=np.uint8,
        )
    inner = dst[:, geom.pad_y : geom.pad_y + geom.new_h, geom.pad_x : geom.pad_x + geom.new_w]
    # BGR HWC uint8 -> RGB CHW float, one strided pass per channel
    for c in range(3):
        np.multiply(image[:, :, 2 - c], np.float32(1.0 / 255.0), out=inner[c], casting="unsafe")
    return geom


def preprocess(
    image: Frame, input_hw: tuple[int, int], dtype: type[np.floating[Any]] = np.float32
) -> tuple[npt.NDArray[np.floating[Any]], Letterbox]:
    """One frame as a fresh ``[1, 3, H, W]`` model input (for calibration and tools)."""
    out = np.empty((1, 3, *input_hw), dtype=dtype)
    return out, letterbox_into(image, out[0])


def _crop(frame: Frame, region: Region | None) -> tuple[Frame, tuple[int, int]]:
    if region is None:
        return frame, (0, 0)
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in region)
    x1, x2 = max(0, min(x1, w)), max(0, min(x2, w))
    y1, y2 = max(0, min(y1, h)), max(0, min(y2, h))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"region {tuple(region)} lies outside the {w}x{h} frame or is empty")
    return frame[y1:y2, x1:x2], (x1, y1)
