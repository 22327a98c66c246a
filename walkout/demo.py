"""``walkout demo``: record a simulated scenario, replay it through edge, fusion and billing,
print the receipts and the scores.

Everything runs on this machine with the embedded defaults: the demo store config, the shipped
detector, keys minted for the run. The output folder keeps the recording, the run (service logs,
databases, annotated videos) and the evaluation report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from walkout.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "demo-store.yaml"


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def print_receipts(receipts: list[dict[str, Any]]) -> None:
    for r in receipts:
        cur = r.get("currency", "")
        flag = "  ** held for review **" if r.get("review") else ""
        print(f"\n  receipt {r.get('receipt_no', '?')}  account {r['account_id']}{flag}")
        for line in r["lines"]:
            promo = f"  ({line['promotion']})" if line.get("promotion") else ""
            print(
                f"    {line['quantity']:>3} x {line.get('name', line['sku']):<28} "
                f"{_money(int(line.get('total_minor', 0)), cur):>14}{promo}"
            )
        print(f"    {'total (tax incl.)':<34} {_money(int(r.get('total_minor', 0)), cur):>14}")


def _step(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rec, run_dir = out / "recording", out / "run"
    cfg = str(args.config)
    if cli_main(["config", "check", cfg]) != 0:
        return 1
    t = _step(
        1, 4, f"recording the '{args.scenario}' scenario ({args.duration:.0f} s of store time)"
    )
    code = cli_main(
        ["sim", "record", "--config", cfg, "--scenario", args.scenario, "--seed", str(args.seed),
         "--duration", str(args.duration), "--out", str(rec)]
    )  # fmt: skip
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s: {rec}")
    _step(2, 4, "replaying it through edge nodes, fusion and billing (separate processes)")
    code = cli_main(
        ["replay", str(rec), "--config", cfg, "--out", str(run_dir), "--annotate", "--force"]
    )
    if code:
        return code
    _step(3, 4, "receipts")
    receipts = json.loads((run_dir / "receipts.json").read_text())
    print_receipts(receipts)
    _step(4, 4, "scores against the simulator's truth")
    code = cli_main(["eval", str(rec), str(run_dir)])
    if code:
        return code
    print(f"\nreport:           {run_dir / 'eval' / 'report.md'}")
    print(f"annotated videos: {run_dir / 'annotated'}")
    print(f"service logs:     {run_dir / 'logs'}")
    return 0


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="store config")
    p.add_argument("--scenario", default="busy", help="scenario family (walkout sim families)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--duration", type=float, default=60.0, help="store seconds to record")
    p.add_argument("--out", default=str(ROOT / "runs" / "demo"), help="output folder")
    p.set_defaults(handler=run)


if __name__ == "__main__":
    sys.exit(cli_main(["demo", *sys.argv[1:]]))
