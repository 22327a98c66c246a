"""The umbrella command line: ``walkout <area> <command>``.

Each area registers its own subcommands from its package (``sim/cli.py``, ``edge/cli.py``,
``fusion/cli.py``, ``billing/cli.py``, ``walkout/replay_cli.py``), imported only when that area
is asked for, so ``walkout config check`` never pays for OpenCV or ONNX Runtime.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from walkout import __version__

# area -> (module that registers it, one-line help)
AREAS: dict[str, tuple[str, str]] = {
    "config": ("walkout.config_cli", "check a store config"),
    "keys": ("walkout.keys", "generate CurveZMQ key pairs for nodes and services"),
    "sim": ("sim.cli", "synthetic store: record scenarios, export training sets"),
    "edge": ("edge.cli", "run or record an edge node"),
    "fusion": ("fusion.cli", "run the sensor-fusion service"),
    "billing": ("billing.cli", "settle carts; receipts, refunds, review, reconciliation"),
    "train": ("edge.train", "train and export the detector (needs the 'train' extra)"),
    "replay": ("walkout.replay", "replay a recording through the real services"),
    "eval": ("walkout.evaluate", "score a replay against the recording's truth"),
    "demo": ("walkout.demo", "record, replay and score the default scenario"),
}

Handler = Callable[[argparse.Namespace], int]


def _configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    level = int(os.environ.get("WALKOUT_LOG_LEVEL", level))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def build_parser(areas: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walkout", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"walkout {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="area", metavar="AREA")
    for area, (module, help_text) in AREAS.items():
        if areas is not None and area not in areas:
            sub.add_parser(area, help=help_text, add_help=False)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that area is not built yet
            raise
        mod.register(sub, area, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([wanted] if wanted in AREAS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
