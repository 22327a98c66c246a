"""The struct-of-arrays detections type every edge stage takes and returns.

One ``Detections`` holds N boxes of one frame as parallel numpy arrays: ``xyxy`` float32
``[N, 4]`` in image pixels, ``confidence`` float32 ``[N]``, ``class_id`` int32 ``[N]`` and
``tracker_id`` int64 ``[N]`` (``-1`` where no tracker has claimed the box). Filtering is a
boolean mask (``dets[dets.confidence > 0.5]``); stages return new objects instead of editing
arrays in place, so a detector's output can be handed to several consumers safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]

UNTRACKED: Final = -1

__all__ = ["UNTRACKED", "Detections"]


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of each xyxy box of ``a`` (``[N, 4]``) with each of ``b`` (``[M, 4]``): ``[N, M]``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: npt.NDArray[np.float64] = inter / np.maximum(
        area_a[:, None] + area_b[None, :] - inter, 1e-9
    )
    return out


def _as_array(name: str, value: Any, dtype: type[np.generic], shape: str) -> npt.NDArray[Any]:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Detections.{name}: expected {shape} of {dtype.__name__}: {exc}") from exc
    return arr


class Detections:
    """N detections of one frame; arrays are parallel, row i is one box.

    ``xyxy`` is ``[x1, y1, x2, y2]`` in pixels of the frame the detections belong to. Inputs
    are converted to the documented dtypes; shapes are checked. Attributes cannot be rebound.
    """

    __slots__ = ("class_id", "confidence", "tracker_id", "xyxy")

    xyxy: Float32Array
    confidence: Float32Array
    class_id: Int32Array
    tracker_id: Int64Array

    def __init__(
        self,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        class_id: npt.ArrayLike,
        tracker_id: npt.ArrayLike | None = None,
    ) -> None:
        boxes = _as_array("xyxy", xyxy, np.float32, "[N, 4]")
        if boxes.ndim == 1 and boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"Detections.xyxy: expected shape [N, 4], got {list(boxes.shape)}")
        n = boxes.shape[0]
        conf = _as_array("confidence", confidence, np.float32, "[N]")
        cls_raw = np.asarray(class_id)
        if cls_raw.size and not np.issubdtype(cls_raw.dtype, np.integer):
            raise TypeError(
                f"Detections.class_id: expected integers, got dtype {cls_raw.dtype}; "
                "round or cast class ids before building Detections"
            )
        cls = _as_array("class_id", cls_raw, np.int32, "[N]")
        if tracker_id is None:
            tid = np.full(n, UNTRACKED, dtype=np.int64)
        else:
            tid = _as_array("tracker_id", tracker_id, np.int64, "[N]")
        for name, arr in (("confidence", conf), ("class_id", cls), ("tracker_id", tid)):
            if arr.shape != (n,):
                raise ValueError(
                    f"Detections.{name}: expected shape [{n}] (one per box in xyxy), "
                    f"got {list(arr.shape)}"
                )
        object.__setattr__(self, "xyxy", boxes)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "tracker_id", tid)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Detections is immutable: build a new one instead of setting {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Detections is immutable: cannot delete {name}")

    def __reduce__(self) -> tuple[type[Detections], tuple[Any, ...]]:
        # Pickle (e.g. to a worker process) through the constructor, which re-checks shapes.
        return (Detections, (self.xyxy, self.confidence, self.class_id, self.tracker_id))

    @classmethod
    def empty(cls) -> Detections:
        """No detections (N = 0)."""
        return cls(
            xyxy=np.empty((0, 4), dtype=np.float32),
            confidence=np.empty(0, dtype=np.float32),
            class_id=np.empty(0, dtype=np.int32),
        )

    @classmethod
    def merge(cls, parts: Iterable[Detections]) -> Detections:
        """Concatenate detections (e.g. of several regions of one frame) in order."""
        items = list(parts)
        if not items:
            return cls.empty()
        for i, item in enumerate(items):
            if not isinstance(item, Detections):
                raise TypeError(
                    f"Detections.merge: expected Detections at position {i}, "
                    f"got {type(item).__name__}"
                )
        return cls(
            xyxy=np.concatenate([d.xyxy for d in items], axis=0),
            confidence=np.concatenate([d.confidence for d in items]),
            class_id=np.concatenate([d.class_id for d in items]),
            tracker_id=np.concatenate([d.tracker_id for d in items]),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: int | slice | Sequence[int] | npt.NDArray[Any]) -> Detections:
        """Select rows: a boolean mask of length N, integer indices, a slice or one int.

        Always returns ``Detections`` (one int gives a one-row result).
        """
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"Detections index {int(index)} out of range for {n} boxes")
            sel: Any = [int(index)]
        elif isinstance(index, slice):
            sel = index
        else:
            sel = np.asarray(index)
            if sel.dtype == np.bool_:
                if sel.shape != (len(self),):
                    raise IndexError(
                        f"Detections mask: expected shape [{len(self)}], got {list(sel.shape)}"
                    )
            elif sel.size == 0:
                sel = sel.astype(np.intp)
            elif not np.issubdtype(sel.dtype, np.integer):
                raise IndexError(
                    f"Detections index: expected a boolean mask or integer indices, "
                    f"got dtype {sel.dtype}"
                )
        return Detections(
            xyxy=self.xyxy[sel],
            confidence=self.confidence[sel],
            class_id=self.class_id[sel],
            tracker_id=self.tracker_id[sel],
        )

    def __iter__(self) -> Iterator[tuple[Float32Array, float, int, int]]:
        """Rows as ``(xyxy, confidence, class_id, tracker_id)``; for logging, not hot loops."""
        for i in range(len(self)):
            yield (
                self.xyxy[i],
                float(self.confidence[i]),
                int(self.class_id[i]),
                int(self.tracker_id[i]),
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        return (
            np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.confidence, other.confidence)
            and np.array_equal(self.class_id, other.class_id)
            and np.array_equal(self.tracker_id, other.tracker_id)
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are mutable

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, classes={sorted(set(self.class_id.tolist()))})"

    @property
    def area(self) -> Float32Array:
        """Box areas in square pixels, ``[N]`` (0 for degenerate boxes)."""
        wh: Float32Array = np.maximum(self.xyxy[:, 2:4] - self.xyxy[:, 0:2], np.float32(0.0))
        return (wh[:, 0] * wh[:, 1]).astype(np.float32, copy=False)

    @property
    def centers(self) -> Float32Array:
        """Box centres ``[N, 2]`` as (x, y) pixels."""
        return ((self.xyxy[:, 0:2] + self.xyxy[:, 2:4]) * 0.5).astype(np.float32, copy=False)

    @property
    def bottom_centers(self) -> Float32Array:
        """Middle of each box's bottom edge ``[N, 2]``: where a person stands on the floor."""
        out = np.empty((len(self), 2), dtype=np.float32)
        out[:, 0] = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        out[:, 1] = self.xyxy[:, 3]
        return out

    def with_tracker_ids(self, tracker_id: npt.ArrayLike) -> Detections:
        """A copy whose ``tracker_id`` is the given ``[N]`` array (``-1`` = untracked)."""
        return Detections(
            xyxy=self.xyxy,
            confidence=self.confidence,
            class_id=self.class_id,
            tracker_id=np.asarray(tracker_id, dtype=np.int64),
        )

    def shifted(self, dx: float, dy: float) -> Detections:
        """A copy with boxes moved by (dx, dy) pixels, e.g. from a crop back to the frame."""
        offset = np.array([dx, dy, dx, dy], dtype=np.float32)
        return Detections(
            xyxy=self.xyxy + offset,
            confidence=self.confidence,
            class_id=self.class_id,
            tracker_id=self.tracker_id,
        )
