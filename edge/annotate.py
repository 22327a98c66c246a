"""``--annotate DIR``: per camera an mp4v video with lane regions, boxes, track ids and
interaction markers, for people to look at (never read back by the pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.detections import Detections
from edge.sources import Frame
from walkout.config import Store

if TYPE_CHECKING:
    from edge.node import _Camera

HAND, PERSON, ITEM, LANE, OPEN = (
    (0, 200, 255),
    (255, 128, 0),
    (60, 220, 60),
    (200, 200, 200),
    (0, 0, 255),
)
ARM = (255, 0, 255)  # a hand in a lane to where its arm entered the image


class Annotator:
    def __init__(self, folder: Path, store: Store):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = store
        self._writers: dict[str, cv2.VideoWriter] = {}
        self.frames_written = 0

    def _writer(self, camera_id: str, w: int, h: int) -> cv2.VideoWriter:
        wr = self._writers.get(camera_id)
        if wr is None:
            fps = self.store.cameras[camera_id].fps
            path = self.folder / f"{camera_id}.mp4"
            wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
            self._writers[camera_id] = wr
        return wr

    def frame(self, f: Frame, dets: Detections | None, cam: _Camera) -> None:
        img = f.image.copy()
        h, w = img.shape[:2]
        names: list[str] = []
        if cam.shelf is not None:
            names = list(cam.shelf.sku_names)
            for lane in cam.shelf.lanes:
                poly = np.round(cam.shelf.regions.polygons[lane.lane_id]).astype(np.int32)
                colour = LANE if lane.phase.value == "idle" else OPEN
                cv2.polylines(img, [poly], True, colour, 2 if colour == OPEN else 1)
                x, y = int(poly[:, 0].min()) + 3, int(poly[:, 1].min()) + 12
                label = f"{lane.lane_id} {lane.phase.value}"
                cv2.putText(img, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
                for visit in lane.visits:
                    if visit.open and not visit.missing and visit.root_x_px:
                        hx, hy = (int(c) for c in visit.hand_xy)
                        rx = int(np.median(visit.root_x_px[-8:]))
                        cv2.line(img, (hx, hy), (rx, h - 1), ARM, 1, cv2.LINE_AA)
                        cv2.circle(img, (rx, h - 4), 5, ARM, -1)
        if dets is not None:
            for box, _conf, cls, _tid in dets:
                x1, y1, x2, y2 = (int(v) for v in box)
                if cam.shelf is not None and cls == cam.shelf.hand_class:
                    colour = HAND
                elif cam.shelf is None:
                    colour = PERSON
                else:
                    colour = ITEM
                cv2.rectangle(img, (x1, y1), (x2, y2), colour, 1)
        if cam.overhead is not None:
            for box, _conf, _cls, tid in cam.overhead.last_tracks:
                x1, y1, x2, y2 = (int(v) for v in box)
                cv2.rectangle(img, (x1, y1), (x2, y2), PERSON, 2)
                cv2.putText(
                    img, f"#{tid}", (x1, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
                )
        state = "inferred" if dets is not None else "skipped (no motion)"
        text = f"{f.camera_id} f{f.index} {state}"
        cv2.putText(img, text, (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        del names
        self._writer(f.camera_id, w, h).write(img)
        self.frames_written += 1

    def close(self) -> None:
        for wr in self._writers.values():
            wr.release()
        self._writers.clear()
