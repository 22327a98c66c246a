"""``walkout eval REC RUN``: score a replay against the recording's truth.

Reads from the run folder (written by ``walkout replay``):

- ``receipts.json``: billing's receipts (account, lines, review flag, evidence ids);
- ``carts.jsonl``: the CartClosed messages fusion sent (entry and exit times per checkout);
- ``events.jsonl``: every edge message fusion made durable (ShelfInteraction gives events);
- ``assignments.jsonl`` (optional): which account fusion gave each piece of evidence;
- ``latency.json`` (optional): fusion's latency histograms at the end of the replay:
  ``cart_update_ms`` (event time to the cart change, watermark wait included; meaningful when
  the replay ran ``--realtime``) and ``apply_ms`` (durable in fusion's log to applied).

Writes ``RUN/eval/report.md``, ``summary.json`` and PNG plots (receipt F1 per family, SKU
confusions, latency histogram).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from walkout.config import load_store
from walkout.recording import Recording, RecordingError, Truth
from walkout.scoring import (
    PredictedEvent,
    PredictedReceipt,
    PredictedStep,
    Score,
    score_run,
    step_units,
)

RECEIPTS = "receipts.json"
CARTS = "carts.jsonl"
EVENTS = "events.jsonl"
ASSIGNMENTS = "assignments.jsonl"
LATENCY = "latency.json"
STORE = "store.yaml"


class RunError(Exception):
    """A run folder lacks what scoring needs."""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunError(f"{path}:{n}: not JSON ({exc})") from exc
    return out


def load_receipts(run: Path) -> list[PredictedReceipt]:
    p = run / RECEIPTS
    if not p.exists():
        raise RunError(f"{p}: missing; produce the run with 'walkout replay REC --out {run}'")
    carts = {c["checkout_id"]: c for c in _jsonl(run / CARTS)}
    out = []
    for r in json.loads(p.read_text()):
        cart = carts.get(r["checkout_id"], {})
        lines: dict[str, int] = {}
        evidence: dict[str, str] = {}
        for line in r["lines"]:
            lines[line["sku"]] = lines.get(line["sku"], 0) + int(line["quantity"])
            for ev in line.get("evidence", ()):
                evidence[ev] = line["sku"]
        out.append(
            PredictedReceipt(
                account_id=r["account_id"],
                checkout_id=r["checkout_id"],
                entry_ts_ns=int(cart.get("entry_ts_ns", 0)),
                exit_ts_ns=int(cart.get("exit_ts_ns", 0)),
                lines=lines,
                review=bool(r.get("review", False)),
                evidence=evidence,
            )
        )
    return out


def load_events(run: Path) -> list[PredictedEvent]:
    out = []
    for m in _jsonl(run / EVENTS):
        if m.get("type") != "ShelfInteraction":
            continue
        for d in m.get("deltas", ()):
            out.append(
                PredictedEvent(
                    evidence_id=m["interaction_id"],
                    lane_id=m["lane_id"],
                    sku=d["sku"],
                    delta=int(d["delta"]),
                    start_ts_ns=int(m["start_ts_ns"]),
                    end_ts_ns=int(m["end_ts_ns"]),
                )
            )
    return out


def load_steps(run: Path) -> list[PredictedStep]:
    """The plates' steps, each with the units of its lane's SKU it amounts to, by the store
    config the run used (``store.yaml``, written by ``walkout replay``; 1 without it)."""
    unit_g = load_store(run / STORE).lane_unit_g if (run / STORE).exists() else {}
    out = []
    for m in _jsonl(run / EVENTS):
        if m.get("type") != "WeightChange":
            continue
        delta = float(m["delta_g"])
        units = step_units(delta, unit_g.get(m["lane_id"]))
        out.append(
            PredictedStep(m["lane_id"], delta, int(m["start_ts_ns"]), int(m["end_ts_ns"]), units)
        )
    return out


def load_assignments(run: Path) -> dict[str, str]:
    return {
        a["evidence_id"]: a["account_id"] for a in _jsonl(run / ASSIGNMENTS) if a.get("account_id")
    }


def score_folder(truth: Truth, run: Path) -> Score:
    return score_run(
        truth, load_receipts(run), load_events(run), load_assignments(run), load_steps(run)
    )


# ------------------------------------------------------------------ report


@dataclass(frozen=True)
class Latency:
    """One latency histogram: bucket upper bounds (ms) and the count in each bucket."""

    title: str
    le: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def n(self) -> int:
        return int(sum(self.counts))

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf past the last bound)."""
        target, running = q * self.n, 0.0
        for bound, c in zip(self.le, self.counts):
            running += c
            if running >= target:
                return bound
        return math.inf


def load_latency(run: Path) -> Latency | None:
    """The replay's cart-update histogram when it ran in real time, else the apply one."""
    p = run / LATENCY
    if not p.exists():
        return None
    doc = json.loads(p.read_text())
    key = "cart_update_ms" if doc.get("realtime") else "apply_ms"
    hist = doc.get(key)
    if not hist:
        return None
    le = [math.inf if b == "+Inf" else float(b) for b in hist["le"]]
    cum = [float(c) for c in hist["cumulative"]]
    counts = [c - (cum[i - 1] if i else 0.0) for i, c in enumerate(cum)]
    title = (
        "event time to cart change (real-time replay, watermark wait included)"
        if key == "cart_update_ms"
        else "durable in fusion's log to applied (replay faster than real time)"
    )
    return Latency(title, tuple(le), tuple(counts))


def _plots(scores: Sequence[Score], total: Score, latency: Latency | None, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fams = [s.family for s in scores]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(fams) + 2), 3.2))
    vals = [s.lines.f1 for s in scores]
    ax.bar(fams, vals, color=["#2a9d8f" if v >= 0.97 else "#e76f51" for v in vals])
    ax.axhline(0.97, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("receipt line F1")
    ax.set_title(f"Receipt line F1 per family (overall {total.lines.f1:.3f})")
    for i, v in enumerate(vals):
        ax.text(i, min(v + 0.01, 0.98), f"{v:.3f}", ha="center", fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(out / "f1_per_family.png", dpi=110)
    plt.close(fig)
    made.append("f1_per_family.png")

    conf = total.confusions
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    if conf:
        trues = sorted({t for t, _ in conf})
        preds = sorted({p for _, p in conf})
        grid = [[conf.get((t, p), 0) for p in preds] for t in trues]
        ax.imshow(grid, cmap="Oranges", vmin=0)
        ax.set_xticks(range(len(preds)), preds, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(trues)), trues, fontsize=8)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xlabel("on the receipt")
        ax.set_ylabel("truly taken")
    else:
        ax.text(0.5, 0.5, "no SKU confusions", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("SKU confusions (units)")
    fig.tight_layout()
    fig.savefig(out / "sku_confusions.png", dpi=110)
    plt.close(fig)
    made.append("sku_confusions.png")

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    if latency is not None and latency.n:
        labels = [f"<={b:g}" if math.isfinite(b) else "more" for b in latency.le]
        ax.bar(range(len(labels)), latency.counts, color="#264653")
        ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
        ax.set_xlabel(f"ms: {latency.title}", fontsize=8)
        ax.set_ylabel("batches" if "applied" in latency.title else "shelf events")
        p50, p99 = latency.quantile(0.5), latency.quantile(0.99)
        ax.set_title(f"Latency: p50 <= {p50:g} ms, p99 <= {p99:g} ms (n={latency.n})", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no latency samples in this run", ha="center", va="center")
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    made.append("latency.png")
    return made


def _row(s: Score) -> str:
    return (
        f"| {s.family} | {s.visits} | {s.lines.f1:.3f} | {s.lines.precision:.3f} | "
        f"{s.lines.recall:.3f} | {s.exact_rate:.1%} | {s.events.precision:.3f} | "
        f"{s.events.recall:.3f} | {s.plate_steps.precision:.3f} | {s.plate_steps.recall:.3f} | "
        f"{s.association_accuracy:.3f} | {s.review_rate:.1%} |"
    )


HEADER = (
    "| family | visits | line F1 | precision | recall | exact receipts | vision event P "
    "| vision event R | plate step P | plate step R | association | review rate |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def by_family(scores: Sequence[Score]) -> tuple[list[Score], Score]:
    fams: dict[str, Score] = {}
    total = Score(family="all")
    for s in scores:
        fams.setdefault(s.family, Score(family=s.family)).add(s)
        total.add(s)
    return [fams[k] for k in sorted(fams)], total


def write_report(
    scores: Sequence[Score],
    out: Path,
    title: str,
    latency: Latency | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    fams, total = by_family(scores)
    plots = _plots(fams, total, latency, out)
    summary = {
        "overall": total.summary(),
        "families": [f.summary() for f in fams],
        "runs": [s.summary() for s in scores],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = [f"# {title}", "", HEADER]
    md += [_row(f) for f in fams]
    if len(fams) > 1:
        md.append(_row(total))
    md += ["", *notes, ""]
    md += [f"![{p}]({p})" for p in plots]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return summary


def _eval(args: argparse.Namespace) -> int:
    rec_dir, run = Path(args.recording), Path(args.run)
    try:
        truth = Recording(rec_dir).truth()
        if truth is None:
            print(f"{rec_dir}: has no truth.json (only simulated recordings can be scored)")
            return 1
        score = score_folder(truth, run)
    except (RecordingError, RunError, msgspec.ValidationError, KeyError) as exc:
        print(f"cannot score {run} against {rec_dir}: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else run / "eval"
    summary = write_report(
        [score], out, f"Evaluation of {run.name} on {rec_dir.name}", load_latency(run)
    )
    o = summary["overall"]
    assert isinstance(o, dict)
    print(
        f"{truth.family}: receipt line F1 {o['line_f1']:.3f} (P {o['line_precision']:.3f}, "
        f"R {o['line_recall']:.3f}), exact receipts {o['exact_receipts']:.0%}, vision events P "
        f"{o['event_precision']:.3f} R {o['event_recall']:.3f}, plate steps P "
        f"{o['plate_step_precision']:.3f} R {o['plate_step_recall']:.3f}, association "
        f"{o['association_accuracy']:.3f}, review rate {o['review_rate']:.0%}"
    )
    print(f"report: {out / 'report.md'}")
    return 0


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("recording", help="recording folder with truth.json")
    p.add_argument("run", help="run folder written by 'walkout replay'")
    p.add_argument("--out", help="report folder (default RUN/eval)")
    p.set_defaults(handler=_eval)
