"""Wire messages: one frozen, tagged msgspec struct per message, msgpack on the wire.

Rules for evolving them (a reader of version N must read what a writer of N+k sends, or refuse
it clearly):

* A new field always gets a default; readers ignore fields they do not know.
* No renames, no type changes, no removed fields. A change that cannot follow these rules bumps
  the message's ``v``; a reader refuses a ``v`` above :data:`MAX_VERSION` with
  :class:`UnsupportedVersion`.
* Every message carries ``source_id`` (the sending node or service), ``boot_id`` (the
  incarnation of the sender's outbox: a fresh one is minted when an outbox is created, so
  ``seq`` never repeats within one ``boot_id``), ``seq`` (assigned when the message is first
  written to the sender's outbox) and ``event_ts_ns`` (capture time, epoch nanoseconds).

Units are in the names: ``_ns`` epoch nanoseconds, ``_m`` floor metres, ``_g`` grams,
``_minor`` integer minor units of money.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

NonNeg = Annotated[int, Meta(ge=0)]


class Message(
    msgspec.Struct,
    frozen=True,
    tag_field="type",
    kw_only=True,
    omit_defaults=False,
    array_like=False,
    # Messages hold only strings, numbers and tuples of other messages' parts: they can never
    # form a reference cycle, so the garbage collector need not walk the thousands in flight.
    gc=False,
):
    """Fields common to every message."""

    # Checked while decoding (no per-message Python loop): a newer version fails the bound and
    # is explained as UnsupportedVersion. A type that moves to v2 overrides this field.
    v: Annotated[int, Meta(ge=1, le=1)] = 1
    source_id: str
    boot_id: str = ""
    seq: NonNeg = 0
    event_ts_ns: NonNeg


# ------------------------------------------------------------------ edge -> fusion


class SkuDelta(msgspec.Struct, frozen=True, gc=False):
    sku: str
    # Count change of the lane: -2 means two units left the shelf (a pick), +1 a put-back.
    delta: int
    confidence: float = 1.0


class ShelfInteraction(Message, frozen=True, tag="ShelfInteraction", kw_only=True):
    interaction_id: str
    camera_id: str
    lane_id: str
    start_ts_ns: NonNeg
    end_ts_ns: NonNeg
    deltas: tuple[SkuDelta, ...] = ()
    # Where the hand left the lane, in floor metres; None when the camera has no floor mapping.
    exit_xy_m: tuple[float, float] | None = None
    hand_track_id: int | None = None
    confidence: float = 1.0
    evidence_frames: tuple[int, ...] = ()
    # Where the hand's arm came from: the point of the shelf's front edge in front of which
    # it entered the shelf camera's view (floor metres), that is, where its shopper stands;
    # None when it could not be told. Added in version 1 with a default: older readers skip it.
    arm_root_xy_m: tuple[float, float] | None = None


class FloorTrack(msgspec.Struct, frozen=True, gc=False):
    track_id: int
    x_m: float
    y_m: float
    confidence: float = 1.0
    # How the person looks from above (a colour signature, see edge.overhead.look_signature):
    # sent now and then, while the person stands clear of others; empty otherwise.
    look: tuple[float, ...] = ()


class TrackUpdate(Message, frozen=True, tag="TrackUpdate", kw_only=True):
    camera_id: str
    frame_index: NonNeg = 0
    tracks: tuple[FloorTrack, ...] = ()


class WeightChange(Message, frozen=True, tag="WeightChange", kw_only=True):
    plate_id: str
    lane_id: str
    start_ts_ns: NonNeg
    end_ts_ns: NonNeg
    delta_g: float
    sigma_g: float


class GateEvent(Message, frozen=True, tag="GateEvent", kw_only=True):
    gate_id: str
    kind: Literal["entry", "exit"]
    # Entry gates scan an account (app QR code); one scan may admit a group.
    account_id: str | None = None
    group_size: Annotated[int, Meta(ge=1, le=16)] = 1
    xy_m: tuple[float, float] | None = None


class Heartbeat(Message, frozen=True, tag="Heartbeat", kw_only=True):
    # Outbox depth at the sender; 0 from a receiver.
    pending: NonNeg = 0
    status: str = "ok"
    # Devices of the sending node that give no readings now (plates, cameras): fusion stops
    # waiting for their evidence until a heartbeat no longer lists them.
    down: tuple[str, ...] = ()


# ------------------------------------------------------------------ fusion -> billing


class CartLine(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    quantity: Annotated[int, Meta(ge=1)]
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()
    review: bool = False


class CartClosed(Message, frozen=True, tag="CartClosed", kw_only=True):
    checkout_id: str
    session_id: str
    account_id: str
    store_id: str
    entry_ts_ns: NonNeg
    exit_ts_ns: NonNeg
    lines: tuple[CartLine, ...] = ()
    review: bool = False
    review_reasons: tuple[str, ...] = ()


class SessionOpened(Message, frozen=True, tag="SessionOpened", kw_only=True):
    """Sent to billing at entry so it can place the pre-authorization hold."""

    session_id: str
    account_id: str
    store_id: str
    group_size: int = 1


# ------------------------------------------------------------------ link control


class Ack(Message, frozen=True, tag="Ack", kw_only=True):
    """Cumulative: every message of (acked_source_id, acked_boot_id) up to acked_seq is durable."""

    acked_source_id: str
    acked_boot_id: str
    acked_seq: NonNeg


AnyMessage = (
    ShelfInteraction
    | TrackUpdate
    | WeightChange
    | GateEvent
    | Heartbeat
    | CartClosed
    | SessionOpened
    | Ack
)

MAX_VERSION: Final[dict[str, int]] = {
    "ShelfInteraction": 1,
    "TrackUpdate": 1,
    "WeightChange": 1,
    "GateEvent": 1,
    "Heartbeat": 1,
    "CartClosed": 1,
    "SessionOpened": 1,
    "Ack": 1,
}


class WireError(Exception):
    """A frame that cannot be read; the receiver counts it and drops it."""

    reason = "malformed"


class MalformedMessage(WireError):
    reason = "malformed"


class UnknownMessageType(WireError):
    reason = "unknown_type"


class UnsupportedVersion(WireError):
    reason = "unsupported_version"


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(AnyMessage)
_batch_decoder: Final = msgspec.msgpack.Decoder(list[AnyMessage])
_peek_decoder: Final = msgspec.msgpack.Decoder(dict[str, object])
_raw_batch_decoder: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])


def encode(msg: AnyMessage) -> bytes:
    return _encoder.encode(msg)


def encode_many(msgs: list[AnyMessage]) -> bytes:
    """The concatenated encodings of ``msgs`` (a batch frame body without its header)."""
    enc = _encoder.encode
    return b"".join([enc(m) for m in msgs])


def _explain(data: bytes | memoryview, exc: Exception) -> WireError:
    try:
        head = _peek_decoder.decode(data)
    except msgspec.DecodeError:
        return MalformedMessage(f"not a msgpack map ({len(data)} bytes): {exc}")
    kind = head.get("type")
    if isinstance(kind, str) and kind not in MAX_VERSION:
        return UnknownMessageType(
            f"unknown message type {kind!r} from {head.get('source_id')!r}; "
            f"this reader knows {', '.join(sorted(MAX_VERSION))}"
        )
    version = head.get("v")
    if isinstance(kind, str) and isinstance(version, int) and version > MAX_VERSION[kind]:
        return UnsupportedVersion(
            f"{kind} version {version} from {head.get('source_id')!r} is newer than this reader "
            f"(reads up to {MAX_VERSION[kind]}); upgrade this service"
        )
    return MalformedMessage(f"invalid {kind or 'message'}: {exc}")


def decode(data: bytes | memoryview) -> AnyMessage:
    """Decode one message; raises a :class:`WireError` subclass that says why it was refused."""
    try:
        msg: AnyMessage = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _explain(data, exc) from None
    return msg


def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_batch(payloads: list[bytes]) -> bytes:
    """Frame already-encoded messages as one msgpack array without re-encoding them."""
    return array_header(len(payloads)) + b"".join(payloads)


def split_batch(data: bytes | memoryview) -> list[bytes]:
    """The encoded messages of a batch frame, without decoding them."""
    try:
        return [bytes(r) for r in _raw_batch_decoder.decode(data)]
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"invalid batch frame ({len(data)} bytes): {exc}") from None


def decode_batch(data: bytes | memoryview) -> list[AnyMessage]:
    """Decode a batch frame; one bad message refuses the whole frame (the sender resends)."""
    try:
        msgs = _batch_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        try:
            items = _raw_batch_decoder.decode(data)
        except msgspec.DecodeError:
            raise MalformedMessage(f"invalid batch frame ({len(data)} bytes): {exc}") from None
        for i, raw in enumerate(items):  # slow path, only to say which message and why
            try:
                decode(bytes(raw))
            except WireError as item_exc:
                raise type(item_exc)(f"message {i} of the batch: {item_exc}") from None
        raise MalformedMessage(f"invalid batch frame ({len(data)} bytes): {exc}") from None
    return msgs
