"""Load and check a store config: every error with file:line, key path and a hint.

Checks run in three passes, all of which collect errors rather than stop at the first:

1. YAML: safe loader only; syntax errors and duplicate keys.
2. Shape: unknown keys, missing keys, wrong types and out-of-range numbers, walked against the
   structs of :mod:`walkout.schema`.
3. Meaning: duplicate ids, dangling references and impossible geometry.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import numpy as np
import yaml

from walkout.schema import Camera, Gondola, Lane, Product, StoreConfig

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path or '<top>'}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ConfigError(Exception):
    """A config that cannot be used; ``issues`` holds every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in store config"
        super().__init__(head + ":\n" + "\n".join(str(i) for i in self.issues))


def format_path(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Lines:
    """Maps a key path to the YAML line it was written on (1-based)."""

    def __init__(self) -> None:
        self._lines: dict[PathT, int] = {}

    def add(self, path: PathT, line: int) -> None:
        self._lines.setdefault(path, line)

    def line(self, path: PathT) -> int:
        # The nearest ancestor that was written in the file: a missing key points at its parent.
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), 1)


class _Collector:
    def __init__(self, file: str, lines: _Lines):
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def add(self, path: PathT, message: str, hint: str = "") -> None:
        self.issues.append(
            ConfigIssue(self.file, self.lines.line(path), format_path(path), message, hint)
        )


# ---------------------------------------------------------------- pass 1: YAML


def _walk_nodes(node: yaml.Node, path: PathT, lines: _Lines, out: _Collector) -> None:
    lines.add(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                out.add(
                    (*path, key),
                    f"duplicate key '{key}' (first on line {seen[key]})",
                    "YAML keeps only the last one; remove or rename one of them",
                )
            seen[key] = key_node.start_mark.line + 1
            lines.add((*path, key), key_node.start_mark.line + 1)
            _walk_nodes(value_node, (*path, key), lines, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_nodes(item, (*path, i), lines, out)


def _parse_yaml(text: str, file: str) -> tuple[Any, _Lines, _Collector]:
    lines = _Lines()
    out = _Collector(file, lines)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            out.add((), "the file is empty", "start from configs/demo-store.yaml")
            return None, lines, out
        _walk_nodes(node, (), lines, out)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        out.issues.append(
            ConfigIssue(file, line, "", f"YAML syntax error: {problem}", "check indentation")
        )
        return None, lines, out
    finally:
        loader.dispose()
    return data, lines, out


# ---------------------------------------------------------------- pass 2: shape


def _type_name(t: mi.Type) -> str:
    names = {
        mi.StrType: "a string",
        mi.IntType: "an integer",
        mi.FloatType: "a number",
        mi.BoolType: "true or false",
        mi.NoneType: "null",
        mi.ListType: "a list",
        mi.DictType: "a mapping",
        mi.StructType: "a mapping",
    }
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(repr(v) for v in t.values)
    if isinstance(t, mi.TupleType):
        return f"a list of {len(t.item_types)} items"
    if isinstance(t, mi.VarTupleType):
        return "a list"
    if isinstance(t, mi.UnionType):
        return " or ".join(_type_name(x) for x in t.types)
    return names.get(type(t), type(t).__name__)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _check_bounds(value: float | int | str, t: mi.Type, path: PathT, out: _Collector) -> None:
    if isinstance(t, mi.StrType):
        assert isinstance(value, str)
        if t.min_length is not None and len(value) < t.min_length:
            out.add(path, f"must be at least {t.min_length} characters, got {value!r}")
        if t.max_length is not None and len(value) > t.max_length:
            out.add(path, f"must be at most {t.max_length} characters, got {len(value)}")
        if t.pattern is not None and not re.search(t.pattern, value):
            out.add(path, f"{value!r} does not match the pattern {t.pattern}")
        return
    assert isinstance(t, mi.IntType | mi.FloatType)
    num = float(value)
    for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        bound = getattr(t, attr, None)
        if bound is None:
            continue
        ok = {"ge": num >= bound, "gt": num > bound, "le": num <= bound, "lt": num < bound}[attr]
        if not ok:
            out.add(path, f"must be {word} {bound}, got {value!r}")


def _shape_errors(value: Any, t: mi.Type) -> list[ConfigIssue]:
    scratch = _Collector("", _Lines())
    _check_shape(value, t, (), scratch)
    return scratch.issues


def _check_shape(value: Any, t: mi.Type, path: PathT, out: _Collector) -> None:
    if isinstance(t, mi.AnyType):
        return
    if isinstance(t, mi.UnionType):
        for option in t.types:
            if not _shape_errors(value, option):
                return
        non_null = [o for o in t.types if not isinstance(o, mi.NoneType)]
        if value is not None and len(non_null) == 1:
            _check_shape(value, non_null[0], path, out)
        else:
            out.add(path, f"expected {_type_name(t)}, got {_describe(value)}")
        return
    if isinstance(t, mi.StructType):
        _check_struct(value, t, path, out)
    elif isinstance(t, mi.ListType | mi.VarTupleType):
        if not isinstance(value, list):
            out.add(path, f"expected {_type_name(t)}, got {_describe(value)}")
            return
        min_len = getattr(t, "min_length", None)
        max_len = getattr(t, "max_length", None)
        if min_len is not None and len(value) < min_len:
            out.add(path, f"needs at least {min_len} items, got {len(value)}")
        if max_len is not None and len(value) > max_len:
            out.add(path, f"takes at most {max_len} items, got {len(value)}")
        for i, item in enumerate(value):
            _check_shape(item, t.item_type, (*path, i), out)
    elif isinstance(t, mi.TupleType):
        if not isinstance(value, list) or len(value) != len(t.item_types):
            out.add(path, f"expected {_type_name(t)}, got {_describe(value)}")
            return
        for i, (item, item_t) in enumerate(zip(value, t.item_types)):
            _check_shape(item, item_t, (*path, i), out)
    elif isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            out.add(path, f"expected a mapping, got {_describe(value)}")
            return
        for key, item in value.items():
            _check_shape(key, t.key_type, (*path, str(key)), out)
            _check_shape(item, t.value_type, (*path, str(key)), out)
    elif isinstance(t, mi.LiteralType):
        if value not in t.values or isinstance(value, bool) != any(
            isinstance(v, bool) for v in t.values
        ):
            close = difflib.get_close_matches(str(value), [str(v) for v in t.values], n=1)
            hint = f"did you mean {close[0]!r}?" if close else ""
            out.add(path, f"expected {_type_name(t)}, got {_describe(value)}", hint)
    elif isinstance(t, mi.BoolType):
        if not isinstance(value, bool):
            out.add(path, f"expected true or false, got {_describe(value)}")
    elif isinstance(t, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "money and counts are whole numbers (prices in minor units: 1.29 is 129)"
            out.add(path, f"expected an integer, got {_describe(value)}", hint)
        else:
            _check_bounds(value, t, path, out)
    elif isinstance(t, mi.FloatType):
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.add(path, f"expected a number, got {_describe(value)}")
        elif not math.isfinite(value):
            out.add(path, f"expected a finite number, got {value!r}")
        else:
            _check_bounds(value, t, path, out)
    elif isinstance(t, mi.StrType):
        if not isinstance(value, str):
            out.add(path, f"expected a string, got {_describe(value)}", "quote it in the YAML")
        else:
            _check_bounds(value, t, path, out)
    elif isinstance(t, mi.NoneType):
        if value is not None:
            out.add(path, f"expected null, got {_describe(value)}")
    else:  # pragma: no cover - a schema type this walker does not know yet
        raise TypeError(f"config schema uses an unsupported type {t!r} at {format_path(path)}")


def _check_struct(value: Any, t: mi.StructType, path: PathT, out: _Collector) -> None:
    name = t.cls.__name__
    if not isinstance(value, dict):
        out.add(path, f"expected a mapping ({name}), got {_describe(value)}")
        return
    fields = {f.encode_name: f for f in t.fields}
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "allowed keys: " + ", ".join(sorted(fields))
            )
            out.add((*path, str(key)), f"unknown key '{key}' in {name}", hint)
    for key, f in fields.items():
        if key in value:
            _check_shape(value[key], f.type, (*path, key), out)
        elif f.required:
            out.add(path, f"missing required key '{key}' in {name}", f"add '{key}:'")


# ---------------------------------------------------------------- pass 3: meaning


def _ids(
    items: Sequence[Any], attr: str, section: str, out: _Collector
) -> dict[str, tuple[int, Any]]:
    seen: dict[str, tuple[int, Any]] = {}
    for i, item in enumerate(items):
        key = getattr(item, attr)
        if key in seen:
            first = out.lines.line((section, seen[key][0]))
            out.add(
                (section, i, attr),
                f"duplicate {attr} '{key}' (first defined on line {first})",
                f"every {attr} in {section} must be unique",
            )
        else:
            seen[key] = (i, item)
    return seen


def _ref(
    value: str | None, known: Mapping[str, Any], what: str, path: PathT, out: _Collector
) -> None:
    if value is None or value in known:
        return
    close = difflib.get_close_matches(value, list(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"define {what} '{value}' first"
    out.add(path, f"unknown {what} '{value}'", hint)


def _inside(point: Sequence[float], width: float, height: float, slack: float = 0.0) -> bool:
    return -slack <= point[0] <= width + slack and -slack <= point[1] <= height + slack


_ENDPOINT = re.compile(r"^(tcp://[^:\s]+:\d{1,5}|ipc://\S+|inproc://\S+)$")


def _check_meaning(cfg: StoreConfig, out: _Collector) -> None:
    taxes = _ids(cfg.tax_classes, "id", "tax_classes", out)
    products = _ids(cfg.products, "sku", "products", out)
    _ids(cfg.promotions, "id", "promotions", out)
    gondolas = _ids(cfg.gondolas, "id", "gondolas", out)
    lanes = _ids(cfg.lanes, "id", "lanes", out)
    plates = _ids(cfg.plates, "id", "plates", out)
    _ids(cfg.cameras, "id", "cameras", out)
    _ids(cfg.gates, "id", "gates", out)
    nodes = _ids(cfg.nodes, "id", "nodes", out)
    categories = {p.category for p in cfg.products}
    fw, fd = cfg.floor.width_m, cfg.floor.depth_m

    for i, p in enumerate(cfg.products):
        _ref(p.tax_class, taxes, "tax class", ("products", i, "tax_class"), out)
        if p.currency != cfg.store.currency:
            out.add(
                ("products", i, "currency"),
                f"product currency {p.currency} differs from the store's {cfg.store.currency}",
                "one store sells in one currency",
            )

    for i, promo in enumerate(cfg.promotions):
        base: PathT = ("promotions", i)
        for j, sku in enumerate(promo.skus):
            _ref(sku, products, "SKU", (*base, "skus", j), out)
        if promo.kind == "multibuy":
            if not promo.skus or promo.buy is None or promo.pay is None:
                out.add(base, "a multibuy needs skus, buy and pay", "e.g. buy: 3, pay: 2")
            elif promo.pay >= promo.buy:
                out.add((*base, "pay"), f"pay ({promo.pay}) must be less than buy ({promo.buy})")
        elif promo.kind == "bundle":
            if len(promo.skus) < 2 or promo.price_minor is None:
                out.add(base, "a bundle needs at least two skus and price_minor")
        elif promo.category is None or promo.percent_bp is None:
            out.add(base, "a percent_off needs category and percent_bp", "1000 bp is 10 %")
        elif promo.category not in categories:
            _ref(promo.category, dict.fromkeys(categories), "category", (*base, "category"), out)

    for i, g in enumerate(cfg.gondolas):
        for j, pt in enumerate(g.front_m):
            if not _inside(pt, fw, fd):
                out.add(
                    ("gondolas", i, "front_m", j),
                    f"point {list(pt)} lies outside the {fw} x {fd} m floor",
                )
        if g.front_m[0] == g.front_m[1]:
            out.add(("gondolas", i, "front_m"), "the front segment has zero length")

    slots: dict[tuple[str, int, int], str] = {}
    for i, lane in enumerate(cfg.lanes):
        base = ("lanes", i)
        _ref(lane.sku, products, "SKU", (*base, "sku"), out)
        _ref(lane.gondola, gondolas, "gondola", (*base, "gondola"), out)
        _ref(lane.plate, plates, "plate", (*base, "plate"), out)
        if lane.gondola in gondolas:
            g = gondolas[lane.gondola][1]
            if lane.column >= g.columns:
                out.add(
                    (*base, "column"),
                    f"column {lane.column} is past gondola {g.id}'s {g.columns} columns",
                    f"use 0..{g.columns - 1}",
                )
            if lane.level >= g.levels:
                out.add(
                    (*base, "level"),
                    f"level {lane.level} is past gondola {g.id}'s {g.levels} levels",
                    f"use 0..{g.levels - 1}",
                )
            slot = (lane.gondola, lane.column, lane.level)
            if slot in slots:
                out.add(base, f"lane {lane.id} occupies the same bay as lane {slots[slot]}")
            slots[slot] = lane.id
        if lane.initial_count > lane.capacity:
            out.add(
                (*base, "initial_count"),
                f"initial_count {lane.initial_count} exceeds capacity {lane.capacity}",
            )
        if lane.plate in plates and plates[lane.plate][1].lane != lane.id:
            out.add(
                (*base, "plate"),
                f"plate {lane.plate} is configured for lane {plates[lane.plate][1].lane}",
                "a plate and its lane must name each other",
            )

    for i, plate in enumerate(cfg.plates):
        _ref(plate.lane, lanes, "lane", ("plates", i, "lane"), out)
        _ref(plate.node, nodes, "node", ("plates", i, "node"), out)

    seen_lanes: set[str] = set()
    for i, cam in enumerate(cfg.cameras):
        base = ("cameras", i)
        _ref(cam.node, nodes, "node", (*base, "node"), out)
        w, h = cam.resolution
        if cam.kind == "shelf":
            if not cam.lanes:
                out.add((*base, "lanes"), "a shelf camera must see at least one lane")
            if cam.homography is not None:
                out.add((*base, "homography"), "only overhead cameras take a homography")
        else:
            if cam.lanes:
                out.add((*base, "lanes"), "overhead cameras do not take lane polygons")
            if cam.homography is None:
                out.add(
                    (*base, "homography"),
                    "an overhead camera needs a homography from image pixels to floor metres",
                    "calibrate with four floor markers and cv2.findHomography",
                )
            elif abs(float(np.linalg.det(np.array(cam.homography).reshape(3, 3)))) < 1e-12:
                out.add((*base, "homography"), "the homography is singular (not invertible)")
        for lane_id, poly in cam.lanes.items():
            lpath = (*base, "lanes", lane_id)
            _ref(lane_id, lanes, "lane", lpath, out)
            seen_lanes.add(lane_id)
            if len(poly) < 3:
                out.add(lpath, f"a lane polygon needs at least 3 points, got {len(poly)}")
                continue
            for j, pt in enumerate(poly):
                if not _inside(pt, w, h):
                    out.add(
                        (*lpath, j),
                        f"point {list(pt)} lies outside the camera's {w}x{h} image",
                        "lane polygons are in image pixels of this camera",
                    )
            area = cv_area(poly)
            if area < 16:
                out.add(lpath, f"the lane polygon encloses {area:.1f} px^2: degenerate")
    for i, lane in enumerate(cfg.lanes):
        if lane.id not in seen_lanes:
            out.add(
                ("lanes", i),
                f"lane {lane.id} is seen by no shelf camera",
                "add its polygon to a shelf camera's lanes",
            )

    for i, gate in enumerate(cfg.gates):
        _ref(gate.node, nodes, "node", ("gates", i, "node"), out)
        for j, pt in enumerate(gate.line_m):
            if not _inside(pt, fw, fd, slack=0.5):
                out.add(("gates", i, "line_m", j), f"point {list(pt)} lies off the floor")
    kinds = {g.kind for g in cfg.gates}
    for kind in ("entry", "exit"):
        if kind not in kinds:
            out.add(("gates",), f"the store has no {kind} gate")
    if not any(c.kind == "overhead" for c in cfg.cameras):
        out.add(("cameras",), "the store has no overhead camera", "shoppers cannot be tracked")

    for name in ("fusion", "fusion_snapshots", "billing"):
        ep = getattr(cfg.services, name)
        for attr in ("bind", "connect"):
            addr = getattr(ep, attr)
            if not _ENDPOINT.match(addr):
                out.add(
                    ("services", name, attr),
                    f"{addr!r} is not a ZeroMQ endpoint",
                    "write tcp://HOST:PORT (use tcp://127.0.0.1:PORT for loopback)",
                )


def cv_area(poly: Iterable[Sequence[float]]) -> float:
    pts = np.asarray(list(poly), dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


# ---------------------------------------------------------------- the loaded store


@dataclass(frozen=True)
class Store:
    """A checked config with the lookups every service needs."""

    cfg: StoreConfig
    path: Path
    sha256: str
    products: dict[str, Product] = field(init=False)
    lanes: dict[str, Lane] = field(init=False)
    gondolas: dict[str, Gondola] = field(init=False)
    cameras: dict[str, Camera] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "products", {p.sku: p for p in self.cfg.products})
        object.__setattr__(self, "lanes", {lane.id: lane for lane in self.cfg.lanes})
        object.__setattr__(self, "gondolas", {g.id: g for g in self.cfg.gondolas})
        object.__setattr__(self, "cameras", {c.id: c for c in self.cfg.cameras})

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the repository (configs/..) or absolute."""
        p = Path(relative)
        if p.is_absolute():
            return p
        base = self.root.parent if self.root.name == "configs" else self.root
        return base / p

    @property
    def keys_dir(self) -> Path:
        return self.resolve(self.cfg.security.keys_dir)

    def lane_front_xy_m(self, lane_id: str) -> tuple[float, float]:
        """Floor position of the middle of a lane's front edge, where a hand reaches in."""
        lane = self.lanes[lane_id]
        g = self.gondolas[lane.gondola]
        (x0, y0), (x1, y1) = g.front_m
        t = (lane.column + 0.5) / g.columns
        return (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)

    @cached_property
    def lane_of_plate(self) -> dict[str, str]:
        return {p.id: p.lane for p in self.cfg.plates}

    @cached_property
    def lane_unit_g(self) -> dict[str, float]:
        """Unit weight of each lane's SKU (the planogram's), by lane."""
        return {x.id: self.products[x.sku].unit_weight_g for x in self.cfg.lanes}

    def node_devices(self, node_id: str) -> dict[str, list[str]]:
        c = self.cfg
        return {
            "cameras": [x.id for x in c.cameras if x.node == node_id],
            "plates": [x.id for x in c.plates if x.node == node_id],
            "gates": [x.id for x in c.gates if x.node == node_id],
        }


def parse_store(text: str, file: str = "<config>") -> StoreConfig:
    """Parse and check config text; raises :class:`ConfigError` listing every problem."""
    data, _lines, out = _parse_yaml(text, file)
    if out.issues:
        raise ConfigError(out.issues)
    _check_shape(data, mi.type_info(StoreConfig), (), out)
    if out.issues:
        raise ConfigError(out.issues)
    cfg = msgspec.convert(data, StoreConfig, strict=False)
    _check_meaning(cfg, out)
    if out.issues:
        raise ConfigError(out.issues)
    return cfg


def load_store(path: str | Path) -> Store:
    """Read, parse and check a store config file."""
    import hashlib

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(p), 0, "", f"cannot read the file: {exc.strerror}", "check the path")]
        ) from exc
    cfg = parse_store(raw.decode("utf-8", errors="replace"), str(p))
    return Store(cfg=cfg, path=p.resolve(), sha256=hashlib.sha256(raw).hexdigest())


def iter_issues(text: str, file: str = "<config>") -> Iterator[ConfigIssue]:
    try:
        parse_store(text, file)
    except ConfigError as exc:
        yield from exc.issues
