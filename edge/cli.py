"""``walkout edge run``: one edge node, live or from a recording, publishing over the link."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from walkout.messages import AnyMessage

log = logging.getLogger(__name__)


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text, description=help_text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    run = cmds.add_parser("run", help="run every device of one node and publish to fusion")
    run.add_argument("--config", required=True, type=Path, help="store config YAML")
    run.add_argument("--node", required=True, help="node id from the config's nodes")
    run.add_argument("--recording", type=Path, help="read this recording instead of devices")
    run.add_argument("--realtime", action="store_true", help="pace a recording to real time")
    run.add_argument("--annotate", type=Path, help="write annotated videos into this folder")
    run.add_argument("--data", type=Path, default=Path("var/edge"), help="outbox folder")
    run.add_argument("--model", type=Path, help="detector model (default: the config's)")
    run.add_argument(
        "--drain-timeout", type=float, default=120.0, help="seconds to wait for acks at the end"
    )
    run.add_argument("--gate-port", type=int, help="live: TCP port for gate controllers")
    run.add_argument("--plate-port", type=int, help="live: TCP port for plate controllers")
    run.add_argument(
        "--no-motion-gate", action="store_true", help="infer every frame (for comparison)"
    )
    run.set_defaults(handler=run_cmd)
    rec = cmds.add_parser("record", help="capture a node's live cameras into a recording")
    rec.add_argument("--config", required=True, type=Path, help="store config YAML")
    rec.add_argument("--node", required=True, help="node id from the config's nodes")
    rec.add_argument("--out", required=True, type=Path, help="recording folder to write")
    rec.add_argument("--duration", type=float, default=60.0, help="seconds to record")
    rec.set_defaults(handler=record_cmd)


def record_cmd(args: argparse.Namespace) -> int:
    from edge.record import record
    from walkout.config import ConfigError, load_store

    try:
        store = load_store(args.config)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        manifest = record(store, args.node, args.out, args.duration)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    frames = {c: t.frames for c, t in manifest.cameras.items()}
    log.info("recorded %s into %s", frames, args.out)
    return 0 if any(frames.values()) else 1


def run_cmd(args: argparse.Namespace) -> int:
    from edge.annotate import Annotator
    from edge.detector import Detector, ModelError
    from edge.node import EdgeNode, NodeSettings
    from walkout.config import ConfigError, load_store
    from walkout.link import Outbox, Sender
    from walkout.metrics import Registry, serve

    try:
        store = load_store(args.config)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    node_cfg = next((n for n in store.cfg.nodes if n.id == args.node), None)
    if node_cfg is None:
        known = ", ".join(n.id for n in store.cfg.nodes)
        log.error("node %r is not in %s (nodes: %s)", args.node, args.config, known)
        return 2
    try:
        cfg = store.cfg.detector
        if args.model is not None:
            cfg = msgspec.structs.replace(cfg, model=str(args.model.resolve()))
        detector = Detector.from_config(cfg, store.resolve("."))
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    registry = Registry()
    args.data.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(args.data / f"{args.node}-outbox.sqlite", args.node)
    sender = Sender.from_store(store, outbox, "fusion", registry=registry).start()
    server = serve(registry, node_cfg.metrics_port) if node_cfg.metrics_port else None

    def publish(msgs: Sequence[AnyMessage]) -> None:
        while True:
            try:
                outbox.put_many(list(msgs))
                return
            except Exception as exc:  # OutboxFull: wait for fusion instead of losing events
                log.warning("outbox: %s; waiting", exc)
                time.sleep(0.5)

    annotator = Annotator(args.annotate, store) if args.annotate else None
    settings = NodeSettings(motion_gating=not args.no_motion_gate)
    node = EdgeNode(
        store,
        args.node,
        detector,
        publish,
        settings=settings,
        registry=registry,
        annotate=annotator.frame if annotator else None,
    )
    try:
        if args.recording is not None:
            stats = node.run_recording(args.recording, realtime=args.realtime)
            log.info(
                "replayed %d frames (%d inferred) in %.1f s: %d interactions, %d weight "
                "changes, %d gate events",
                stats.frames,
                stats.inferred,
                stats.wall_s,
                stats.interactions,
                stats.weight_changes,
                stats.gate_events,
            )
        else:
            from edge.live import LivePorts, run_live

            run_live(node, ports=LivePorts(gate_port=args.gate_port, plate_port=args.plate_port))
        if not sender.wait_drained(args.drain_timeout):
            log.error(
                "fusion did not acknowledge %d messages within %.0f s; they stay in the "
                "outbox and are sent on the next start",
                outbox.pending,
                args.drain_timeout,
            )
            return 1
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if annotator is not None:
            annotator.close()
        sender.stop()
        outbox.close()
        if server is not None:
            server.shutdown()
