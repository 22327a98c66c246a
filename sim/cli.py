"""``walkout sim``: record simulated scenarios, export detector training sets, list families."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from walkout.config import ConfigError, load_store

DEFAULT_CONFIG = "configs/demo-store.yaml"


def _load(path: str) -> Any:
    try:
        return load_store(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None


def _dataset(args: argparse.Namespace) -> int:
    from sim.dataset import write_dataset

    store = _load(args.config)
    if store is None:
        return 2
    if args.images < 1:
        print(
            f"walkout sim dataset: --images must be at least 1, got {args.images}", file=sys.stderr
        )
        return 2
    stats = write_dataset(store, Path(args.out), args.images, args.seed, args.val_images)
    print(json.dumps({"out": str(args.out), **stats}))
    return 0


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text, description=help_text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ds = cmds.add_parser(
        "dataset",
        help="write an ultralytics detection dataset (SKUs, hand, person) from the renderers",
        description="Train images come from --seed, val images from --seed + 1000. Classes: "
        "every SKU of the config in config order, then hand, then person.",
    )
    ds.add_argument("--out", required=True, help="dataset folder (created)")
    ds.add_argument("--images", type=int, required=True, help="number of train images")
    ds.add_argument(
        "--val-images",
        type=int,
        default=None,
        help="number of val images (default: images / 5, at least 1)",
    )
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--config", default=DEFAULT_CONFIG)
    ds.set_defaults(handler=_dataset)
    from sim.record import register_commands

    register_commands(cmds, DEFAULT_CONFIG)
