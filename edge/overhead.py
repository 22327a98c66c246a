"""Overhead cameras: people detected, tracked (ByteTrack) and mapped to floor metres.

The ceiling camera looks straight down, so a person's box centre is where they stand; the
configured homography maps it to the floor. ``ByteTrackTracker`` from Roboflow's ``trackers``
package keeps ids across frames (one tracker per camera: ids never collide between cameras
because fusion keys them by camera). A TrackUpdate is made for every inferred frame; the node
infers overhead frames at ``track_hz`` or more, so updates come at 5 Hz or faster.

Two people passing close can leave the tracker with their ids swapped: its boxes carry no
identity. So a track also carries, every ``look_interval_s`` while its person stands clear of
everyone else, a colour signature of how that person looks from above (``look_signature``).
Fusion compares it across time with what each shopper looked like and undoes such swaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.detections import Detections, box_iou
from walkout.messages import FloorTrack, TrackUpdate

F64 = npt.NDArray[np.float64]


def image_to_floor(homography: Sequence[float], points_px: npt.NDArray[Any]) -> F64:
    """``[N, 2]`` image pixels to floor metres with a row-major 3x3 homography."""
    h = np.asarray(homography, np.float64).reshape(3, 3)
    pts = np.asarray(points_px, np.float64).reshape(-1, 2)
    ones = np.ones((len(pts), 1))
    proj = np.hstack([pts, ones]) @ h.T
    w = proj[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    out: F64 = proj[:, :2] / w
    return out


LOOK_HUE_BINS = 12
LOOK_GREY_BINS = 4
LOOK_DIMS = LOOK_HUE_BINS + LOOK_GREY_BINS


def look_signature(image: npt.NDArray[np.uint8], box: Sequence[float]) -> tuple[float, ...]:
    """How a person looks from above: a colour histogram of the middle of their box.

    The box is shrunk by a fifth on each side (the floor shows in its corners). Coloured pixels
    (saturation and brightness high enough for a hue to mean something) vote for one of
    ``LOOK_HUE_BINS`` hues, weighted by saturation; grey ones (black, white, grey clothes and
    hair) for one of ``LOOK_GREY_BINS`` brightness levels. Normalized to sum 1, so it does not
    depend on the person's size in the image; hue does not move with a camera's exposure, and
    the grey levels are coarse. Empty when the box holds too few pixels to say.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * 0.2, (y1 - y0) * 0.2
    c0, c1 = max(0, int(x0 + dx)), min(w, round(x1 - dx))
    r0, r1 = max(0, int(y0 + dy)), min(h, round(y1 - dy))
    if c1 - c0 < 3 or r1 - r0 < 3:
        return ()
    hsv = cv2.cvtColor(image[r0:r1, c0:c1], cv2.COLOR_BGR2HSV).reshape(-1, 3)
    hue = hsv[:, 0].astype(np.int32)
    sat = hsv[:, 1].astype(np.float64)
    val = hsv[:, 2].astype(np.int32)
    coloured = (sat >= 60) & (val >= 50)
    hist = np.zeros(LOOK_DIMS, np.float64)
    hue_bin = np.minimum(hue[coloured] * LOOK_HUE_BINS // 180, LOOK_HUE_BINS - 1)
    np.add.at(hist, hue_bin, sat[coloured] / 255.0)
    grey = ~coloured
    np.add.at(hist, LOOK_HUE_BINS + np.minimum(val[grey] * LOOK_GREY_BINS // 256, 3), 0.5)
    total = float(hist.sum())
    if total <= 0.0:
        return ()
    return tuple(round(float(v), 3) for v in hist / total)


def _clear_of_others(boxes: npt.NDArray[Any], i: int, pad: float = 0.25) -> bool:
    """Box i, grown by ``pad`` of its size on each side, touches no other box."""
    x0, y0, x1, y1 = boxes[i]
    px, py = (x1 - x0) * pad, (y1 - y0) * pad
    x0, y0, x1, y1 = x0 - px, y0 - py, x1 + px, y1 + py
    others = np.delete(boxes, i, axis=0)
    if not len(others):
        return True
    hit = (others[:, 0] < x1) & (others[:, 2] > x0) & (others[:, 1] < y1) & (others[:, 3] > y0)
    return not bool(hit.any())


class PersonTracker:
    """ByteTrack over one camera's person boxes."""

    def __init__(
        self, fps: float, *, lost_track_buffer_s: float = 2.0, min_confidence: float = 0.1
    ):
        import supervision as sv
        from trackers import ByteTrackTracker

        self._sv = sv
        self.min_confidence = min_confidence
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(lost_track_buffer_s * fps)),
            frame_rate=fps,
            # A track starts from a confident person; once it runs, low-scoring boxes of a
            # person standing still or reaching into a shelf keep it (ByteTrack's second pass).
            track_activation_threshold=0.4,
            minimum_consecutive_frames=2,
            minimum_iou_threshold=0.1,
            high_conf_det_threshold=0.4,
        )

    def update(self, people: Detections, ts_s: float) -> Detections:
        sv = self._sv
        if len(people):
            keep = people.confidence >= self.min_confidence
            people = people[keep]
        det = sv.Detections(
            xyxy=people.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=people.confidence.astype(np.float32),
            class_id=people.class_id.astype(np.int64),
        )
        out = self._tracker.update(det, timestamp=ts_s)
        if len(out) == 0:
            return Detections.empty()
        tid = out.tracker_id if out.tracker_id is not None else np.full(len(out), -1)
        conf = out.confidence if out.confidence is not None else np.ones(len(out), np.float32)
        cls = out.class_id if out.class_id is not None else np.zeros(len(out), np.int32)
        tracked = Detections(out.xyxy, conf, cls.astype(np.int32), tid)
        return tracked[tracked.tracker_id >= 0]


class OverheadTracking:
    """Person tracks of one overhead camera as floor positions."""

    def __init__(
        self,
        source_id: str,
        camera_id: str,
        homography: Sequence[float],
        names: Sequence[str],
        fps: float,
        look_interval_s: float = 0.4,
    ):
        names = list(names)
        if "person" not in names:
            raise ValueError(
                f"the detector's classes {names} have no 'person'; overhead tracking needs one"
            )
        self.source_id = source_id
        self.camera_id = camera_id
        self.homography = tuple(homography)
        self.person_class = names.index("person")
        self.tracker = PersonTracker(fps)
        self.updates = 0
        self.last_tracks = Detections.empty()
        self.people_seen = 0  # people detected in the last inferred frame (tracked or not)
        self.last_people_ns = -(2**62)  # event time of the last frame with a person or a track
        self.look_interval_ns = int(look_interval_s * 1e9)
        self._last_look_ns: dict[int, int] = {}  # per track id: when its look was last sent

    def update(
        self,
        frame_index: int,
        ts_ns: int,
        dets: Detections,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> TrackUpdate:
        """Track the frame's people; with ``image``, tracks due a look and clear of everyone
        (tracked or merely detected) carry one."""
        people = dets[dets.class_id == self.person_class]
        self.people_seen = len(people)
        tracked = self.tracker.update(people, ts_ns / 1e9)
        self.last_tracks = tracked
        if len(people) or len(tracked):
            self.last_people_ns = ts_ns
        floor = image_to_floor(self.homography, tracked.centers) if len(tracked) else None
        looks = self._looks(ts_ns, tracked, people, image)
        tracks = tuple(
            FloorTrack(
                track_id=int(tracked.tracker_id[i]),
                x_m=round(float(floor[i, 0]), 3),
                y_m=round(float(floor[i, 1]), 3),
                confidence=round(float(tracked.confidence[i]), 3),
                look=looks[i],
            )
            for i in range(len(tracked))
            if floor is not None
        )
        self.updates += 1
        return TrackUpdate(
            source_id=self.source_id,
            event_ts_ns=ts_ns,
            camera_id=self.camera_id,
            frame_index=frame_index,
            tracks=tracks,
        )

    def _looks(
        self,
        ts_ns: int,
        tracked: Detections,
        people: Detections,
        image: npt.NDArray[np.uint8] | None,
    ) -> list[tuple[float, ...]]:
        looks: list[tuple[float, ...]] = [()] * len(tracked)
        if image is None or not len(tracked):
            return looks
        # everyone in view: the tracks, and detections no track took (a track's own box and
        # its detection overlap, so a detection that matches a track is that track)
        untracked = people.xyxy[(box_iou(people.xyxy, tracked.xyxy) <= 0.7).all(axis=1)]
        boxes = np.concatenate([tracked.xyxy, untracked]).astype(np.float64)
        for i in range(len(tracked)):
            tid = int(tracked.tracker_id[i])
            if ts_ns - self._last_look_ns.get(tid, -(2**62)) < self.look_interval_ns:
                continue
            if not _clear_of_others(boxes, i):
                continue
            looks[i] = look_signature(image, boxes[i])
            if looks[i]:
                self._last_look_ns[tid] = ts_ns
        if len(self._last_look_ns) > 4 * len(tracked) + 64:  # forget tracks long gone
            live = {int(t) for t in tracked.tracker_id}
            horizon = ts_ns - 60 * 10**9
            self._last_look_ns = {
                k: v for k, v in self._last_look_ns.items() if k in live or v > horizon
            }
        return looks
