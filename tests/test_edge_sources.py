"""Frame sources and the capture thread, on real video files and image folders."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sources import (
    Capture,
    CaptureSettings,
    Frame,
    ImageFolderSource,
    LiveSource,
    SourceError,
    VideoFileSource,
)
from walkout.recording import write_camera_timestamps

T0 = 1_767_225_600_000_000_000


def write_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> list[int]:
    """A real mp4v video whose frame i shows brightness 4*i; returns the frame brightnesses."""
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 15.0, (w, h))
    assert out.isOpened()
    levels = []
    for i in range(frames):
        level = (4 * i) % 250
        img = np.full((h, w, 3), level, np.uint8)
        cv2.putText(img, str(i), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        out.write(img)
        levels.append(level)
    out.release()
    return levels


def recorded_camera(tmp_path: Path, frames: int, skip: set[int] = frozenset()) -> VideoFileSource:
    video = tmp_path / "cam.mp4"
    write_video(video, frames)
    index = [i for i in range(frames + len(skip)) if i not in skip][:frames]
    write_camera_timestamps(tmp_path / "cam.csv", index, [T0 + i * 66_666_667 for i in index])
    return VideoFileSource("cam", video, tmp_path / "cam.csv")


def drain(cap: Capture, timeout_s: float = 10.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while not cap.done and time.monotonic() < deadline:
        f = cap.get(timeout_s=0.5)
        if f is not None:
            frames.append(f)
    return frames


def test_video_file_frames_carry_recorded_index_and_timestamps(tmp_path: Path) -> None:
    src = recorded_camera(tmp_path, 20, skip={3, 7})
    cap = Capture(src, CaptureSettings(buffer_frames=2, blocking=True)).start()
    frames = drain(cap)
    cap.stop()
    assert [f.index for f in frames] == [i for i in range(22) if i not in {3, 7}]
    assert all(f.ts_ns == T0 + f.index * 66_666_667 for f in frames)
    assert frames[0].image.shape == (64, 96, 3)
    assert cap.dropped == 0 and cap.frames_in == 20


def test_blocking_replay_never_drops_even_with_a_slow_consumer(tmp_path: Path) -> None:
    cap = Capture(recorded_camera(tmp_path, 12), CaptureSettings(buffer_frames=1, blocking=True))
    cap.start()
    got = []
    while not cap.done:
        f = cap.get(timeout_s=2.0)
        if f is not None:
            got.append(f.index)
            time.sleep(0.01)
    cap.stop()
    assert got == list(range(12)) and cap.dropped == 0


def test_live_mode_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    cap = Capture(recorded_camera(tmp_path, 30), CaptureSettings(buffer_frames=2, blocking=False))
    cap.start()
    deadline = time.monotonic() + 10
    while not cap.done and cap.frames_in < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    got = drain(cap)
    cap.stop()
    assert cap.frames_in == 30
    assert cap.dropped == 30 - len(got) and cap.dropped >= 20
    assert got[-1].index == 29  # the newest frames survive


def test_corrupt_bytes_in_the_video_do_not_stop_the_capture(tmp_path: Path) -> None:
    src = recorded_camera(tmp_path, 60)
    data = bytearray(src.video.read_bytes())
    rng = np.random.default_rng(5)
    for pos in rng.integers(len(data) // 3, len(data) * 2 // 3, 40):
        data[int(pos)] ^= 0xFF
    src.video.write_bytes(bytes(data))
    cap = Capture(src, CaptureSettings(blocking=True)).start()
    frames = drain(cap)
    cap.stop()
    assert cap.done
    assert len(frames) + src.corrupt == 60 and len(frames) >= 50
    assert frames[0].index == 0 and frames[-1].index == 59


def test_missing_video_is_reported_and_ends_the_source(tmp_path: Path) -> None:
    write_camera_timestamps(tmp_path / "cam.csv", [0], [T0])
    src = VideoFileSource("cam", tmp_path / "nope.mp4", tmp_path / "cam.csv")
    with pytest.raises(SourceError, match="does not exist"):
        src.open()
    cap = Capture(src).start()
    assert drain(cap, 3) == [] and cap.done
    assert cap.last_error is not None and "nope.mp4" in cap.last_error


def test_image_folder_skips_unreadable_images(tmp_path: Path) -> None:
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{T0 + i * 1000}.png"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / f"{T0 + 2500}.png").write_bytes(b"not a png")
    src = ImageFolderSource("cam", tmp_path, names_are_ts_ns=True)
    cap = Capture(src, CaptureSettings(blocking=True)).start()
    frames = drain(cap)
    cap.stop()
    assert [f.ts_ns for f in frames] == [T0 + i * 1000 for i in range(5)]
    assert src.corrupt == 1


def test_live_source_that_stalls_is_reopened_with_backoff(tmp_path: Path) -> None:
    """A 'camera' that delivers 10 frames and goes silent: the watchdog reopens it."""
    video = tmp_path / "live.mp4"
    write_video(video, 10)
    src = LiveSource("cam", str(video), read_timeout_ms=500)
    settings = CaptureSettings(
        buffer_frames=64, stall_after_s=0.3, backoff_initial_s=0.05, backoff_max_s=0.1
    )
    cap = Capture(src, settings).start()
    deadline = time.monotonic() + 10
    while cap.reconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    cap.stop()
    assert cap.reconnects >= 2 and cap.stalls >= 2
    assert cap.frames_in >= 20  # every reopen delivered the stream again


def test_unreachable_live_source_keeps_retrying_without_crashing() -> None:
    src = LiveSource("cam", "rtsp://127.0.0.1:9/none", read_timeout_ms=200)
    cap = Capture(src, CaptureSettings(backoff_initial_s=0.05, backoff_max_s=0.1)).start()
    deadline = time.monotonic() + 10
    while cap.open_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    cap.stop()
    assert cap.open_failures >= 2 and not cap.connected
    assert cap.last_error is not None and "cannot open" in cap.last_error


def test_edge_record_writes_a_recording_the_node_can_read(tmp_path: Path) -> None:
    """Live capture (OpenCV on a video URI) into the recording format, read back."""
    from edge.record import record
    from walkout.config import load_store
    from walkout.recording import Recording

    store = load_store(Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml")
    video = tmp_path / "live.mp4"
    write_video(video, 12, size=(640, 360))
    manifest = record(
        store,
        "edge-2",
        tmp_path / "rec",
        duration_s=3.0,
        make_source=lambda cam, uri: LiveSource(cam, str(video)),
        settings=CaptureSettings(buffer_frames=64, blocking=True, stall_after_s=30),
    )
    rec = Recording(tmp_path / "rec")
    assert rec.manifest == manifest and manifest.origin == "edge"
    for cam in ("cam-g3-a", "cam-g3-b", "cam-ov-2"):
        idx, ts = rec.camera_timestamps(cam)
        assert list(idx) == list(range(12)) and (np.diff(ts) >= 0).all()
        frames = drain(
            Capture(
                VideoFileSource(
                    cam, rec.camera_video(cam), tmp_path / "rec" / "cameras" / f"{cam}.csv"
                ),
                CaptureSettings(blocking=True),
            ).start()
        )
        assert len(frames) == 12
