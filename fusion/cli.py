"""``walkout fusion run --config FILE [--data DIR]``: the fusion service until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    from fusion.service import FusionService
    from walkout.config import ConfigError, load_store
    from walkout.keys import KeyError_
    from walkout.link import LinkError
    from walkout.metrics import serve

    try:
        store = load_store(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    data = Path(args.data) if args.data else store.resolve("var/fusion")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("fusion: %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from fusion.params import FusionParams

    params = FusionParams.from_store(store, evidence=args.evidence)
    service = FusionService(store, data, params=params, health_every_s=args.health_every_s)
    try:
        service.start()
    except (KeyError_, LinkError, OSError) as exc:
        print(f"fusion: cannot start with data in {data}: {exc}", file=sys.stderr)
        service.stop()
        return 1
    port = store.cfg.services.fusion_metrics_port
    server = serve(service.registry, port) if port else None
    print(f"fusion running: data {data}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            if service.engine_error is not None:
                print(f"fusion: engine failed: {service.engine_error}", file=sys.stderr)
                return 1
    finally:
        if server is not None:
            server.shutdown()
        service.stop()
    return 0


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = cmds.add_parser("run", help="ingest edge events, keep carts, send checkouts to billing")
    run.add_argument("--config", required=True, help="store config (configs/demo-store.yaml)")
    run.add_argument("--data", help="data folder for the log, state and outbox (var/fusion)")
    run.add_argument(
        "--health-every-s", type=float, default=5.0, help="seconds between health log lines"
    )
    run.add_argument(
        "--evidence",
        choices=("fused", "vision", "weight"),
        default="fused",
        help="ablation for evaluation: use only vision or only weight (default: fused)",
    )
    run.set_defaults(handler=_run)
