"""Frame sources behind one small protocol, and the capture thread that reads them.

A :class:`FrameSource` yields :class:`Frame` objects (BGR image, frame index, capture time in
epoch ns). Three kinds exist:

* :class:`VideoFileSource`: a recorded camera (``cameras/<id>.mp4`` plus its ``.csv`` of
  ``frame_index,ts_ns``); finite, deterministic.
* :class:`ImageFolderSource`: a folder of images, one frame each in name order; finite.
* :class:`LiveSource`: RTSP, HTTP or a USB device through ``cv2.VideoCapture``; endless.

:class:`Capture` runs a source in its own thread into a bounded buffer. Live sources drop the
oldest frame when the consumer falls behind (counted in ``dropped``); replay uses
``blocking=True`` so every frame reaches the consumer and runs are deterministic. A live source
that yields no frame for ``stall_after_s`` is closed and reopened with exponential backoff
(counted in ``reconnects``). An undecodable frame is counted in ``corrupt`` and skipped; it never
stops the capture.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeGuard

import cv2
import numpy as np
import numpy.typing as npt

from walkout.recording import read_camera_timestamps

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceError(Exception):
    """A source that cannot be opened or read at all (not a single bad frame)."""


@dataclass(frozen=True, slots=True)
class Frame:
    camera_id: str
    index: int  # the camera's frame number (gaps where the camera dropped frames)
    ts_ns: int  # capture time, epoch ns
    image: Image  # BGR, HxWx3 uint8


class FrameSource(Protocol):
    """What the capture thread reads. ``read`` returns None when nothing is there right now
    (live) or at the end (finite: then ``finished`` is True)."""

    camera_id: str
    finite: bool
    finished: bool
    corrupt: int  # frames that could not be decoded, skipped

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


def _valid(image: object) -> TypeGuard[Image]:
    return (
        isinstance(image, np.ndarray)
        and image.ndim == 3
        and image.shape[2] == 3
        and image.size > 0
        and image.dtype == np.uint8
    )


class VideoFileSource:
    """A recorded camera: the video and its per-frame capture timestamps.

    The n-th decoded frame belongs to the n-th row of the timestamps file. A frame that fails to
    decode is skipped (its row too) and counted; decoding goes on after it.
    """

    finite = True

    def __init__(self, camera_id: str, video: str | Path, timestamps: str | Path):
        self.camera_id = camera_id
        self.video = Path(video)
        self.timestamps = Path(timestamps)
        self.finished = False
        self.corrupt = 0
        self._cap: cv2.VideoCapture | None = None
        self._index = np.zeros(0, np.int64)
        self._ts = np.zeros(0, np.int64)
        self._row = 0
        self._misses = 0

    def open(self) -> None:
        if not self.video.is_file():
            raise SourceError(f"camera {self.camera_id}: video {self.video} does not exist")
        self._index, self._ts = read_camera_timestamps(self.timestamps)
        cap = cv2.VideoCapture(str(self.video))
        if not cap.isOpened():
            raise SourceError(
                f"camera {self.camera_id}: OpenCV cannot open {self.video}; "
                "is it a video file (mp4v)?"
            )
        self._cap = cap
        self._row = 0
        self.finished = False

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None or self.finished:
            return None
        rows = len(self._ts)
        while self._row < rows:
            ok, image = cap.read()
            row = self._row
            self._row += 1
            if ok and _valid(image):
                self._misses = 0
                return Frame(self.camera_id, int(self._index[row]), int(self._ts[row]), image)
            self.corrupt += 1
            self._misses += 1
            # A run of failures longer than any plausible damage means the video has ended
            # early (fewer frames than timestamp rows).
            if self._misses >= 30:
                log.warning(
                    "camera %s: %s ended after row %d of %d timestamp rows",
                    self.camera_id,
                    self.video,
                    row - self._misses + 1,
                    rows,
                )
                break
        self.finished = True
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _stem_number(path: Path) -> int | None:
    m = re.search(r"(\d+)$", path.stem)
    return int(m.group(1)) if m else None


class ImageFolderSource:
    """A folder of still images, one frame each, in name order.

    Capture times come from a number at the end of each file name when ``names_are_ts_ns``,
    otherwise from ``start_ts_ns`` and ``fps``. An unreadable image is skipped and counted.
    """

    finite = True

    def __init__(
        self,
        camera_id: str,
        folder: str | Path,
        *,
        fps: float = 15.0,
        start_ts_ns: int = 0,
        names_are_ts_ns: bool = False,
    ):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.camera_id = camera_id
        self.folder = Path(folder)
        self.fps = fps
        self.start_ts_ns = start_ts_ns
        self.names_are_ts_ns = names_are_ts_ns
        self.finished = False
        self.corrupt = 0
        self._files: list[Path] = []
        self._pos = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"camera {self.camera_id}: {self.folder} is not a folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self._pos = 0
        self.finished = False

    def read(self) -> Frame | None:
        while self._pos < len(self._files):
            i = self._pos
            path = self._files[i]
            self._pos += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if not _valid(image):
                self.corrupt += 1
                log.warning("camera %s: cannot decode %s; skipped", self.camera_id, path)
                continue
            number = _stem_number(path) if self.names_are_ts_ns else None
            ts = number if number is not None else self.start_ts_ns + round(i * 1e9 / self.fps)
            return Frame(self.camera_id, i, ts, image)
        self.finished = True
        return None

    def close(self) -> None:
        self._files = []


def parse_live_uri(uri: str) -> str | int:
    """``usb:N`` or a bare integer is a local device; anything else goes to OpenCV as is."""
    if uri.startswith("usb:"):
        return int(uri[4:])
    if uri.isdigit():
        return int(uri)
    return uri


class LiveSource:
    """RTSP/HTTP/USB (or any URI OpenCV opens) stamped with the local clock at capture."""

    finite = False

    def __init__(self, camera_id: str, uri: str, *, read_timeout_ms: int = 5000):
        self.camera_id = camera_id
        self.uri = uri
        self.read_timeout_ms = read_timeout_ms
        self.finished = False
        self.corrupt = 0
        self._cap: cv2.VideoCapture | None = None
        self._next_index = 0

    def open(self) -> None:
        target = parse_live_uri(self.uri)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self.read_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self.read_timeout_ms,
        ]
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {self.camera_id}: cannot open {self.uri}; check the URI, the network "
                "and the camera's power"
            )
        self._cap = cap

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None:
            return None
        ok, image = cap.read()
        if not ok:
            return None
        if not _valid(image):
            self.corrupt += 1
            return None
        index = self._next_index
        self._next_index += 1
        return Frame(self.camera_id, index, time.time_ns(), image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# ---------------------------------------------------------------- capture thread


@dataclass(frozen=True)
class CaptureSettings:
    buffer_frames: int = 2  # bounded buffer between capture and the consumer
    blocking: bool = False  # replay: wait for room instead of dropping the oldest
    stall_after_s: float = 10.0  # live: reopen after this long without a frame
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    idle_sleep_s: float = 0.005

    def __post_init__(self) -> None:
        if self.buffer_frames < 1:
            raise ValueError(f"buffer_frames must be >= 1, got {self.buffer_frames}")
        if self.stall_after_s <= 0:
            raise ValueError(f"stall_after_s must be > 0, got {self.stall_after_s}")


class Capture:
    """Reads one source in a daemon thread into a bounded buffer.

    ``get`` returns the next frame, or None on timeout; ``done`` is True once a finite source
    is exhausted and its buffer emptied. Counters (read by the metrics and health line):
    ``frames_in``, ``dropped``, ``reconnects``, ``corrupt``, ``stalls``.
    """

    def __init__(self, source: FrameSource, settings: CaptureSettings = CaptureSettings()):
        self.source = source
        self.settings = settings
        self.frames_in = 0
        self.dropped = 0
        self.reconnects = 0
        self.stalls = 0
        self.open_failures = 0
        self.last_frame_monotonic = time.monotonic()
        self.last_error: str | None = None
        self._buf: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._eos = False
        self._thread: threading.Thread | None = None

    @property
    def camera_id(self) -> str:
        return self.source.camera_id

    @property
    def corrupt(self) -> int:
        return self.source.corrupt

    @property
    def done(self) -> bool:
        with self._cond:
            return self._eos and not self._buf

    @property
    def connected(self) -> bool:
        return self.last_error is None

    def start(self) -> Capture:
        if self._thread is not None:
            raise RuntimeError(f"capture of {self.camera_id} already started")
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{self.camera_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def get(self, timeout_s: float | None = None) -> Frame | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._buf:
                if self._eos or self._stop.is_set():
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            frame = self._buf.popleft()
            self._cond.notify_all()
            return frame

    def peek_ts_ns(self, timeout_s: float | None = None) -> int | None:
        """Capture time of the next frame without taking it (None at the end or timeout)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._buf:
                if self._eos or self._stop.is_set():
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            return self._buf[0].ts_ns

    # -------------------------------------------------------------- thread

    def _push(self, frame: Frame) -> None:
        limit = self.settings.buffer_frames
        with self._cond:
            if self.settings.blocking:
                while len(self._buf) >= limit and not self._stop.is_set():
                    self._cond.wait(0.1)
            elif len(self._buf) >= limit:
                self._buf.popleft()
                self.dropped += 1
            self._buf.append(frame)
            self.frames_in += 1
            self._cond.notify_all()

    def _finish(self) -> None:
        with self._cond:
            self._eos = True
            self._cond.notify_all()

    def _open(self) -> bool:
        """Open the source, retrying with backoff until it opens or the capture stops."""
        backoff = self.settings.backoff_initial_s
        while not self._stop.is_set():
            try:
                self.source.open()
            except SourceError as exc:
                self.open_failures += 1
                self.last_error = str(exc)
                if self.source.finite:
                    log.error("%s", exc)
                    return False
                log.warning("%s; retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
                continue
            self.last_error = None
            self.last_frame_monotonic = time.monotonic()
            return True
        return False

    def _run(self) -> None:
        src = self.source
        try:
            if not self._open():
                return
            backoff = self.settings.backoff_initial_s
            while not self._stop.is_set():
                try:
                    frame = src.read()
                except Exception as exc:  # a driver error is one bad read, not the end
                    log.warning("camera %s: read failed: %s", self.camera_id, exc)
                    src.corrupt += 1
                    frame = None
                if frame is not None:
                    self.last_frame_monotonic = time.monotonic()
                    backoff = self.settings.backoff_initial_s
                    self._push(frame)
                    continue
                if src.finite and src.finished:
                    return
                silent_s = time.monotonic() - self.last_frame_monotonic
                if silent_s >= self.settings.stall_after_s:
                    self.stalls += 1
                    self.last_error = f"no frame for {silent_s:.1f} s"
                    log.warning(
                        "camera %s: no frame for %.1f s; reopening in %.1f s",
                        self.camera_id,
                        silent_s,
                        backoff,
                    )
                    src.close()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.settings.backoff_max_s)
                    self.reconnects += 1
                    if not self._open():
                        return
                    continue
                self._stop.wait(self.settings.idle_sleep_s)
        finally:
            src.close()
            self._finish()
