"""Overhead cameras: people detected, tracked (ByteTrack) and mapped to floor metres.

The ceiling camera looks straight down, so a person's box centre is where they stand; the
configured homography maps it to the floor. ``ByteTrackTracker`` from Roboflow's ``trackers``
package keeps ids across frames (one tracker per camera: ids never collide between cameras
because fusion keys them by camera). A TrackUpdate is made for every inferred frame; the node
infers overhead frames at ``track_hz`` or more, so updates come at 5 Hz or faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.detections import Detections
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

    def update(self, frame_index: int, ts_ns: int, dets: Detections) -> TrackUpdate:
        people = dets[dets.class_id == self.person_class]
        self.people_seen = len(people)
        tracked = self.tracker.update(people, ts_ns / 1e9)
        self.last_tracks = tracked
        if len(people) or len(tracked):
            self.last_people_ns = ts_ns
        floor = image_to_floor(self.homography, tracked.centers) if len(tracked) else None
        tracks = tuple(
            FloorTrack(
                track_id=int(tracked.tracker_id[i]),
                x_m=round(float(floor[i, 0]), 3),
                y_m=round(float(floor[i, 1]), 3),
                confidence=round(float(tracked.confidence[i]), 3),
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
