"""``walkout config check FILE``: OK, or every problem with file:line, key path and a hint."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from walkout.config import ConfigError, load_store


def _check(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        try:
            store = load_store(file)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        c = store.cfg
        print(
            f"{file}: OK ({len(c.products)} products, {len(c.lanes)} lanes, "
            f"{len(c.cameras)} cameras, {len(c.plates)} plates, {len(c.gates)} gates, "
            f"{len(c.nodes)} nodes; sha256 {store.sha256[:12]})"
        )
    return status


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = cmds.add_parser("check", help="check store config files")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=_check)
