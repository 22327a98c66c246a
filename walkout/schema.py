"""The store config schema: one frozen struct per section of ``configs/*.yaml``.

Loading and every check live in :mod:`walkout.config`; this module only declares shapes and
bounds. Money is integer minor units, weights are grams, floor positions are metres, image
positions are pixels, times are seconds unless a name says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Grams = Annotated[float, Meta(gt=0, le=100_000)]
Metres = Annotated[float, Meta(ge=-1_000, le=1_000)]
Pixel = Annotated[float, Meta(ge=-100_000, le=100_000)]
Point2 = tuple[float, float]
Colour = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class StoreInfo(_Section, frozen=True, kw_only=True):
    id: Id
    name: str
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    timezone: str = "UTC"


class Floor(_Section, frozen=True, kw_only=True):
    width_m: Annotated[float, Meta(gt=0, le=500)]
    depth_m: Annotated[float, Meta(gt=0, le=500)]


class TaxClass(_Section, frozen=True, kw_only=True):
    id: Id
    name: str
    # Basis points (1 bp = 0.01 %), so 7 % is 700: exact integer arithmetic for money.
    rate_bp: Annotated[int, Meta(ge=0, le=10_000)]


class Packaging(_Section, frozen=True, kw_only=True):
    """How the simulator draws a SKU; look-alike pairs share shape and palette."""

    shape: Literal["can", "bottle", "box", "bag", "bar", "jar", "carton", "tube"]
    colors: Annotated[list[Colour], Meta(min_length=1, max_length=4)]
    label: Annotated[str, Meta(max_length=24)]
    size_mm: tuple[Annotated[float, Meta(gt=0, le=600)], Annotated[float, Meta(gt=0, le=600)]]


class Product(_Section, frozen=True, kw_only=True):
    sku: Id
    name: str
    price_minor: Annotated[int, Meta(ge=0, le=100_000_000)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    tax_class: Id
    category: Id
    unit_weight_g: Grams
    weight_sd_g: Annotated[float, Meta(ge=0, le=10_000)]
    packaging: Packaging


class Promotion(_Section, frozen=True, kw_only=True):
    id: Id
    name: str
    kind: Literal["multibuy", "bundle", "percent_off"]
    # multibuy: buy `buy` of one of `skus`, pay for `pay` (3 for 2).
    # bundle: one of each of `skus` together for `price_minor`.
    # percent_off: `percent_bp` off every unit of `category`.
    skus: list[Id] = []
    category: Id | None = None
    buy: Annotated[int, Meta(ge=1, le=100)] | None = None
    pay: Annotated[int, Meta(ge=0, le=100)] | None = None
    price_minor: Annotated[int, Meta(ge=0)] | None = None
    percent_bp: Annotated[int, Meta(ge=1, le=10_000)] | None = None


class Gondola(_Section, frozen=True, kw_only=True):
    id: Id
    # The shelf face shoppers reach into, as a floor segment from left to right seen from the
    # aisle; lanes divide it into `columns` equal bays on `levels` shelves (0 is the top).
    front_m: tuple[Point2, Point2]
    depth_m: Annotated[float, Meta(gt=0, le=5)] = 0.6
    columns: Annotated[int, Meta(ge=1, le=64)]
    levels: Annotated[int, Meta(ge=1, le=12)]
    shelf_height_m: tuple[float, ...] = ()


class Lane(_Section, frozen=True, kw_only=True):
    id: Id
    gondola: Id
    column: Annotated[int, Meta(ge=0)]
    level: Annotated[int, Meta(ge=0)]
    sku: Id
    capacity: Annotated[int, Meta(ge=1, le=200)]
    initial_count: Annotated[int, Meta(ge=0, le=200)]
    plate: Id | None = None


class Plate(_Section, frozen=True, kw_only=True):
    id: Id
    lane: Id
    node: Id
    rate_hz: Annotated[float, Meta(ge=1, le=1_000)] = 25.0
    noise_sd_g: Annotated[float, Meta(ge=0, le=1_000)] = 1.5
    # Resting load of the empty tray, so readings are absolute like a real load cell.
    tare_g: Annotated[float, Meta(ge=0, le=100_000)] = 250.0


class Camera(_Section, frozen=True, kw_only=True):
    id: Id
    kind: Literal["shelf", "overhead"]
    node: Id
    source: str
    fps: Annotated[float, Meta(gt=0, le=240)] = 15.0
    resolution: tuple[Annotated[int, Meta(ge=16, le=8192)], Annotated[int, Meta(ge=16, le=8192)]]
    # Shelf cameras: the image quadrilateral of every lane they see (clockwise from top-left).
    lanes: dict[Id, list[Point2]] = {}
    # Where hands enter the image from: an edge polygon; by default the bottom edge.
    # Overhead cameras: row-major 3x3 homography from image pixels to floor metres.
    homography: tuple[float, float, float, float, float, float, float, float, float] | None = None


class Gate(_Section, frozen=True, kw_only=True):
    id: Id
    kind: Literal["entry", "exit"]
    node: Id
    line_m: tuple[Point2, Point2]


class Node(_Section, frozen=True, kw_only=True):
    id: Id
    host: str = "127.0.0.1"
    metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 0


class Endpoint(_Section, frozen=True, kw_only=True):
    bind: str
    connect: str


class Services(_Section, frozen=True, kw_only=True):
    fusion: Endpoint
    fusion_snapshots: Endpoint
    billing: Endpoint
    fusion_metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 0
    billing_metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 0


class Security(_Section, frozen=True, kw_only=True):
    curve: bool = True
    # Relative paths resolve against the config file's folder.
    keys_dir: str = "keys"


class Detector(_Section, frozen=True, kw_only=True):
    model: str = "models/walkout-det.onnx"
    providers: tuple[Literal["tensorrt", "cuda", "openvino", "cpu"], ...] = (
        "tensorrt",
        "cuda",
        "openvino",
        "cpu",
    )
    intra_op_threads: Annotated[int, Meta(ge=0, le=256)] = 2
    inter_op_threads: Annotated[int, Meta(ge=0, le=256)] = 1
    conf_threshold: Annotated[float, Meta(ge=0, le=1)] = 0.25
    # Per-class thresholds (class name -> score), e.g. a low one for people so the overhead
    # tracker can keep a track through frames where the person scores low.
    class_conf: dict[str, Annotated[float, Meta(ge=0, le=1)]] = {}
    iou_threshold: Annotated[float, Meta(ge=0, le=1)] = 0.5
    max_batch: Annotated[int, Meta(ge=1, le=64)] = 4


class Fusion(_Section, frozen=True, kw_only=True):
    allowed_lateness_s: Annotated[float, Meta(ge=0, le=600)] = 3.0
    reach_radius_m: Annotated[float, Meta(gt=0, le=5)] = 1.1
    ambiguity_margin: Annotated[float, Meta(ge=0, le=1)] = 0.25
    review_below_confidence: Annotated[float, Meta(ge=0, le=1)] = 0.6


class Billing(_Section, frozen=True, kw_only=True):
    preauth_minor: Annotated[int, Meta(ge=0)] = 5_000
    receipt_prefix: Annotated[str, Meta(max_length=12)] = "R"


class Retention(_Section, frozen=True, kw_only=True):
    clip_days: Annotated[int, Meta(ge=0, le=3_650)] = 7


class StoreConfig(_Section, frozen=True, kw_only=True):
    version: Literal[1]
    store: StoreInfo
    floor: Floor
    tax_classes: list[TaxClass]
    products: list[Product]
    promotions: list[Promotion] = []
    gondolas: list[Gondola]
    lanes: list[Lane]
    plates: list[Plate]
    cameras: list[Camera]
    gates: list[Gate]
    nodes: list[Node]
    services: Services
    security: Security = Security()
    detector: Detector = Detector()
    fusion: Fusion = Fusion()
    billing: Billing = Billing()
    retention: Retention = Retention()
