"""The shared detections type: shape checks, selection, merging and geometry."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from edge.detections import UNTRACKED, Detections


def make(n: int, cls: int = 0) -> Detections:
    x = np.arange(n, dtype=np.float32) * 10
    xyxy = np.stack([x, x, x + 4, x + 2], axis=1)
    return Detections(xyxy, np.linspace(0.1, 0.9, n), np.full(n, cls))


def test_dtypes_and_default_tracker_ids() -> None:
    d = make(3)
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (3, 4)
    assert d.confidence.dtype == np.float32
    assert d.class_id.dtype == np.int32
    assert d.tracker_id.dtype == np.int64
    assert d.tracker_id.tolist() == [UNTRACKED] * 3
    assert len(d) == 3 and bool(d)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(xyxy=np.zeros((2, 3)), confidence=[1, 1], class_id=[0, 0]), ValueError,
         r"xyxy: expected shape \[N, 4\], got \[2, 3\]"),
        (dict(xyxy=np.zeros((2, 4)), confidence=[1], class_id=[0, 0]), ValueError,
         r"confidence: expected shape \[2\].*got \[1\]"),
        (dict(xyxy=np.zeros((2, 4)), confidence=[1, 1], class_id=[0, 0, 0]), ValueError,
         r"class_id: expected shape \[2\].*got \[3\]"),
        (dict(xyxy=np.zeros((2, 4)), confidence=[1, 1], class_id=[0, 0], tracker_id=[1]),
         ValueError, r"tracker_id: expected shape \[2\]"),
        (dict(xyxy=np.zeros((1, 4)), confidence=[1], class_id=[0.5]), TypeError,
         r"class_id: expected integers, got dtype float64"),
        (dict(xyxy=[["a", "b", "c", "d"]], confidence=[1], class_id=[0]), TypeError,
         r"xyxy: expected \[N, 4\] of float32"),
    ],
)  # fmt: skip
def test_constructor_errors(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Detections(**kwargs)


def test_empty_and_merge() -> None:
    e = Detections.empty()
    assert len(e) == 0 and not e and e.xyxy.shape == (0, 4)
    assert len(Detections.merge([])) == 0
    m = Detections.merge([make(2, cls=1), e, make(3, cls=2).with_tracker_ids([7, 8, 9])])
    assert len(m) == 5
    assert m.class_id.tolist() == [1, 1, 2, 2, 2]
    assert m.tracker_id.tolist() == [-1, -1, 7, 8, 9]
    with pytest.raises(TypeError, match="position 1"):
        Detections.merge([e, "x"])  # type: ignore[list-item]


def test_selection_by_mask_indices_slice_and_int() -> None:
    d = make(4).with_tracker_ids([10, 11, 12, 13])
    assert d[d.confidence > 0.5].tracker_id.tolist() == [12, 13]
    assert d[np.array([3, 0])].tracker_id.tolist() == [13, 10]
    assert d[1:3].tracker_id.tolist() == [11, 12]
    one = d[-1]
    assert isinstance(one, Detections) and one.tracker_id.tolist() == [13]
    assert len(d[np.zeros(4, dtype=bool)]) == 0
    assert len(d[[]]) == 0
    with pytest.raises(IndexError, match=r"mask: expected shape \[4\], got \[3\]"):
        d[np.ones(3, dtype=bool)]
    with pytest.raises(IndexError, match="out of range"):
        d[4]
    with pytest.raises(IndexError, match="dtype float"):
        d[np.array([0.5])]


def test_geometry() -> None:
    d = Detections(
        xyxy=[[0, 0, 10, 20], [5, 5, 5, 9], [4, 4, 2, 2]],
        confidence=[1, 1, 1],
        class_id=[0, 0, 0],
    )
    assert d.area.tolist() == [200.0, 0.0, 0.0]
    assert d.centers.tolist() == [[5, 10], [5, 7], [3, 3]]
    assert d.bottom_centers.tolist() == [[5, 20], [5, 9], [3, 2]]
    assert d.shifted(100, 50).xyxy[0].tolist() == [100, 50, 110, 70]


def test_equality_and_immutability_of_fields() -> None:
    assert make(2) == make(2)
    assert make(2) != make(2, cls=1)
    d = make(1)
    with pytest.raises(AttributeError):
        d.xyxy = np.zeros((1, 4), dtype=np.float32)
    assert pickle.loads(pickle.dumps(d)) == d
    rows = list(make(2))
    assert rows[1][1] == pytest.approx(0.9) and rows[1][3] == UNTRACKED
