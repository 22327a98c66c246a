"""Wire contract: round trips, schema evolution, and clear refusals."""

from __future__ import annotations

import msgspec
import pytest

from walkout.messages import (
    Ack,
    CartClosed,
    CartLine,
    FloorTrack,
    GateEvent,
    Heartbeat,
    MalformedMessage,
    SessionOpened,
    ShelfInteraction,
    SkuDelta,
    TrackUpdate,
    UnknownMessageType,
    UnsupportedVersion,
    WeightChange,
    decode,
    decode_batch,
    encode,
    encode_batch,
)

TS = 1_763_000_000_000_000_000
COMMON = {"source_id": "edge-1", "boot_id": "b1", "seq": 7, "event_ts_ns": TS}

EXAMPLES = [
    ShelfInteraction(
        **COMMON,
        interaction_id="i-1",
        camera_id="cam-g1-a",
        lane_id="G1-L00",
        start_ts_ns=TS - 900_000_000,
        end_ts_ns=TS,
        deltas=(SkuDelta("cola-330", -2, 0.97),),
        exit_xy_m=(2.4, 7.1),
        hand_track_id=12,
        confidence=0.93,
        evidence_frames=(101, 102, 117),
    ),
    TrackUpdate(**COMMON, camera_id="cam-ov-1", frame_index=3, tracks=(FloorTrack(4, 1.5, 2.25),)),
    WeightChange(
        **COMMON, plate_id="P-G1-L00", lane_id="G1-L00", start_ts_ns=TS - 1, end_ts_ns=TS,
        delta_g=-690.4, sigma_g=2.1,
    ),
    GateEvent(**COMMON, gate_id="gate-in", kind="entry", account_id="acct-9", group_size=2),
    Heartbeat(**COMMON, pending=3),
    CartClosed(
        **COMMON, checkout_id="c-1", session_id="s-1", account_id="acct-9", store_id="demo-001",
        entry_ts_ns=TS - 10**11, exit_ts_ns=TS,
        lines=(CartLine(sku="cola-330", quantity=2, evidence=("edge-1/b1/7",)),),
        review=True, review_reasons=("ambiguous shopper at G1-L00",),
    ),
    SessionOpened(**COMMON, session_id="s-1", account_id="acct-9", store_id="demo-001"),
    Ack(**COMMON, acked_source_id="edge-1", acked_boot_id="b1", acked_seq=6),
]  # fmt: skip


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: object) -> None:
    data = encode(msg)  # type: ignore[arg-type]
    assert decode(data) == msg
    assert decode_batch(encode_batch([data, data])) == [msg, msg]


def test_batch_framing_handles_every_msgpack_array_header_size() -> None:
    data = encode(EXAMPLES[4])
    for n in (0, 1, 15, 16, 65535, 65536):
        assert len(decode_batch(encode_batch([data] * n))) == n


class WeightChangeV1dot1(msgspec.Struct, frozen=True, tag="WeightChange", tag_field="type"):
    """What a newer writer sends: the same message with a new, defaulted field."""

    source_id: str
    event_ts_ns: int
    plate_id: str
    lane_id: str
    start_ts_ns: int
    end_ts_ns: int
    delta_g: float
    sigma_g: float
    temperature_c: float = 21.5
    v: int = 1


def test_a_reader_ignores_a_new_defaulted_field() -> None:
    newer = WeightChangeV1dot1("edge-1", TS, "P-1", "L-1", 0, 1, -3.0, 1.0, temperature_c=30.0)
    got = decode(msgspec.msgpack.encode(newer))
    assert isinstance(got, WeightChange)
    assert (got.delta_g, got.plate_id) == (-3.0, "P-1")


def test_unknown_type_is_refused_with_a_clear_error() -> None:
    data = msgspec.msgpack.encode({"type": "PriceChange", "source_id": "edge-1", "event_ts_ns": 1})
    with pytest.raises(
        UnknownMessageType, match="unknown message type 'PriceChange' from 'edge-1'"
    ):
        decode(data)
    with pytest.raises(UnknownMessageType, match="message 1 of the batch"):
        decode_batch(encode_batch([encode(EXAMPLES[4]), data]))


def test_newer_version_is_refused_with_a_clear_error() -> None:
    data = encode(msgspec.structs.replace(EXAMPLES[2], v=2))
    with pytest.raises(UnsupportedVersion, match=r"WeightChange version 2 .* upgrade this service"):
        decode(data)
    with pytest.raises(UnsupportedVersion):
        decode_batch(encode_batch([data]))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", msgspec.msgpack.encode({"type": "GateEvent", "source_id": 5})],
)
def test_garbage_is_a_malformed_message_never_a_crash(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(data)


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        EXAMPLES[0].seq = 9  # type: ignore[misc]
