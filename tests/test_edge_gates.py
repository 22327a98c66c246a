"""Gate readers: the recorded file and the line protocol on a real local socket."""

from __future__ import annotations

import json
import socket
import time

import pytest

from edge.gates import GateServer, recorded_gate_events, send_gate_line
from walkout.recording import GateRecord

T0 = 1_767_225_600_000_000_000


def test_recorded_gates_become_events_for_this_node_only() -> None:
    records = [
        GateRecord(ts_ns=T0, gate_id="gate-in", kind="entry", account_id="a-1", group_size=2),
        GateRecord(ts_ns=T0 + 5, gate_id="gate-x", kind="exit"),
        GateRecord(ts_ns=T0 + 9, gate_id="gate-out", kind="exit", xy_m=(8.9, 0.3)),
    ]
    events = list(recorded_gate_events(records, "edge-1", {"gate-in", "gate-out"}))
    assert [(e.gate_id, e.kind, e.event_ts_ns) for e in events] == [
        ("gate-in", "entry", T0),
        ("gate-out", "exit", T0 + 9),
    ]
    assert events[0].account_id == "a-1" and events[0].group_size == 2
    assert events[1].xy_m == (8.9, 0.3) and events[1].source_id == "edge-1"


@pytest.fixture
def server() -> GateServer:
    srv = GateServer("edge-1", ["gate-in", "gate-out"], max_pending=3).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ({"gate_id": "gate-in", "kind": "entry", "account_id": "a-7", "ts_ns": T0}, "ok"),
        ({"gate_id": "gate-out", "kind": "exit"}, "ok"),
        ({"gate_id": "gate-zz", "kind": "exit"}, "error unknown gate 'gate-zz'"),
        ({"gate_id": "gate-in", "kind": "enter"}, "error kind must be"),
        ({"gate_id": "gate-in", "kind": "entry", "group_size": 40}, "error group_size must be"),
        ({"gate_id": "gate-in", "kind": "entry", "colour": "red"}, "error not a gate line"),
    ],
)
def test_line_protocol_answers_every_line(server: GateServer, line: dict, reply: str) -> None:
    assert send_gate_line(server.address, json.dumps(line)).startswith(reply)


def test_events_arrive_in_order_and_the_buffer_is_bounded(server: GateServer) -> None:
    with socket.create_connection(server.address, timeout=5) as s:
        f = s.makefile("rwb")
        replies = []
        for i in range(4):
            line = {"gate_id": "gate-in", "kind": "entry", "account_id": f"a-{i}", "ts_ns": T0 + i}
            f.write(json.dumps(line).encode() + b"\n")
            f.flush()
            replies.append(f.readline().decode().strip())
        f.write(b"not json\n")
        f.flush()
        replies.append(f.readline().decode().strip())
    assert replies[:3] == ["ok"] * 3 and replies[3] == "error busy"
    assert replies[4].startswith("error not a gate line")
    events = server.poll()
    assert [e.account_id for e in events] == ["a-0", "a-1", "a-2"]
    assert [e.event_ts_ns for e in events] == [T0, T0 + 1, T0 + 2]
    assert server.refused == 1 and server.bad_lines == 1 and server.poll() == []


def test_missing_ts_takes_the_node_clock(server: GateServer) -> None:
    before = time.time_ns()
    assert send_gate_line(server.address, '{"gate_id": "gate-out", "kind": "exit"}') == "ok"
    (e,) = server.poll()
    assert before <= e.event_ts_ns <= time.time_ns()


def test_overlong_line_is_refused_and_closed(server: GateServer) -> None:
    assert send_gate_line(server.address, "x" * 5000).startswith("error line longer")
