"""Training-set export: shelf and overhead images with exact boxes, in ultralytics format.

Classes are every SKU of the store config in config order, then ``hand``, then ``person``.
Boxes come from the renderer's id map, so a partly hidden unit gets the box of its visible part
and a unit hidden below ``MIN_VISIBLE`` of its area gets no box. ``--seed S`` draws the train
split from seed S and the val split from seed S + 1000, so no image appears in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from sim.canvas import Canvas
from sim.effects import Lighting, add_noise, apply_lighting, jpeg, motion_blur
from sim.floorplan import facing_shelf, stand_point
from sim.overhead import FloorView, PersonLook, PersonPose, draw_person
from sim.shelf import (
    ArmPose,
    ShelfLayout,
    ShelfStyle,
    draw_arm,
    draw_background,
    draw_lip,
    draw_units,
    price_text,
    random_arm_colours,
)
from walkout.config import Store

U8 = npt.NDArray[np.uint8]
VAL_SEED_OFFSET = 1000
MIN_VISIBLE = 0.18  # share of a unit's area that must show for it to get a box
OVERHEAD_SHARE = 0.25
# Bumped whenever what the generator draws changes, so a dataset folder rendered by an older
# generator is not reused for training (its name carries this number). Older versions are not
# kept: the renderers themselves change between versions, so they could not be re-rendered
# exactly anyway. 2: overhead images with shoppers at shelves, side by side, face to face.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class Label:
    cls: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels, x1/y1 exclusive


def class_names(store: Store) -> list[str]:
    return [p.sku for p in store.cfg.products] + ["hand", "person"]


def lookalike_pairs(store: Store) -> list[tuple[str, str]]:
    """SKU pairs with the same packaging apart from size, or the same unit weight."""
    prods = store.cfg.products
    out: list[tuple[str, str]] = []
    for i, a in enumerate(prods):
        for b in prods[i + 1 :]:
            same_pack = (
                a.packaging.shape == b.packaging.shape
                and a.packaging.colors == b.packaging.colors
                and a.packaging.label == b.packaging.label
            )
            if same_pack or abs(a.unit_weight_g - b.unit_weight_g) < 1e-6:
                out.append((a.sku, b.sku))
    return out


class _Ids:
    def __init__(self) -> None:
        self.next = 0
        self.cls: dict[int, int] = {}

    def new(self, cls: int) -> int:
        oid = self.next
        self.next += 1
        self.cls[oid] = cls
        return oid


def _labels(cv: Canvas, ids: _Ids, item_classes: int) -> list[Label]:
    out: list[Label] = []
    for oid, (box, count) in sorted(cv.visible_boxes().items()):
        cls = ids.cls[oid]
        if cls < item_classes:
            full = cv.full_pixels.get(oid, count)
            if count < MIN_VISIBLE * full:
                continue
        elif count < 40:
            continue
        if box[2] - box[0] < 4 or box[3] - box[1] < 4:
            continue
        out.append(Label(cls, box))
    return out


def _finish(img: U8, rng: np.random.Generator) -> U8:
    img = apply_lighting(img, Lighting.random(rng))
    if rng.random() < 0.35:
        img = motion_blur(img, int(rng.integers(1, 4)), float(rng.uniform(0, 180)))
    img = add_noise(img, rng, float(rng.uniform(0.5, 6.0)))
    return jpeg(img, int(rng.integers(40, 96)))


def render_shelf_sample(store: Store, rng: np.random.Generator) -> tuple[U8, list[Label]]:
    """A random shelf-camera image: random planogram, fill levels, arms and conditions."""
    names = class_names(store)
    cls_of = {n: i for i, n in enumerate(names)}
    n_items = len(store.cfg.products)
    cams = [c for c in store.cfg.cameras if c.kind == "shelf" and c.lanes]
    cam = cams[int(rng.integers(len(cams)))]
    skus = [p.sku for p in store.cfg.products]
    pairs = lookalike_pairs(store)
    lane_ids = list(cam.lanes)
    if rng.random() < 0.4:
        plan = {lid: store.lanes[lid].sku for lid in lane_ids}
    else:
        plan = {lid: skus[int(rng.integers(len(skus)))] for lid in lane_ids}
        if pairs and rng.random() < 0.6:  # put a look-alike pair side by side
            a, b = pairs[int(rng.integers(len(pairs)))]
            row = int(rng.integers(0, max(1, len(lane_ids) // 2)))
            plan[lane_ids[2 * row]] = a
            if 2 * row + 1 < len(lane_ids):
                plan[lane_ids[2 * row + 1]] = b
    caps = {lid: store.lanes[lid].capacity for lid in lane_ids}
    contents: dict[str, list[str]] = {}
    for lid in lane_ids:
        cap = caps[lid]
        n = cap if rng.random() < 0.35 else int(rng.integers(0, cap + 1))
        items = [plan[lid]] * n
        if n and rng.random() < 0.15:  # a unit put back into the wrong lane
            items[int(rng.integers(n))] = skus[int(rng.integers(len(skus)))]
        contents[lid] = items
    # small camera mounting differences: shift and per-corner jitter
    shift = rng.uniform(-8, 8, 2)
    quads = {
        lid: np.asarray(cam.lanes[lid], np.float64) + shift + rng.uniform(-3, 3, (4, 2))
        for lid in lane_ids
    }
    lane_skus = {lid: sorted(set(contents[lid]) | {plan[lid]}) for lid in lane_ids}
    # a quarter in the fixtures the recordings use, the rest in varied stores
    style = ShelfStyle() if rng.random() < 0.25 else ShelfStyle.random(rng)
    layout = ShelfLayout.build(cam, lane_skus, caps, store.products, style, quads)
    layout.px_per_mm *= float(rng.uniform(0.85, 1.0))
    cv = Canvas(draw_background(layout), track_ids=True)
    ids = _Ids()
    for lid, view in layout.lanes.items():
        oids = [ids.new(cls_of[s]) for s in contents[lid]]
        draw_units(cv, layout, view, contents[lid], store.products, oids)
        draw_lip(cv, layout, view, price_text(store.products[plan[lid]]))
    w, h = layout.size
    n_arms = int(rng.choice([0, 1, 1, 2, 2, 3]))
    for _ in range(n_arms):
        lid = lane_ids[int(rng.integers(len(lane_ids)))]
        view = layout.lanes[lid]
        mode = rng.random()
        held: tuple[str, ...] = ()
        if mode < 0.45:  # grasping in the lane
            hx, hy = view.point(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.45, 0.85)))
            if rng.random() < 0.7:
                held = (plan[lid],)
        elif mode < 0.8:  # carrying items out (or in) below the shelves
            hx = float(rng.uniform(0.1, 0.9) * w)
            hy = float(rng.uniform(0.45, 1.0) * h)
            k = int(rng.choice([1, 1, 1, 2, 3]))
            held = tuple(
                skus[int(rng.integers(len(skus)))] if rng.random() < 0.3 else plan[lid]
                for _ in range(k)
            )
        else:  # reaching with an empty hand
            hx, hy = view.point(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.3, 0.9)))
        ex = float(np.clip(hx + rng.uniform(-200, 200), -40, w + 40))
        sleeve, skin, long_sleeve = random_arm_colours(rng)
        arm = ArmPose(
            (ex, h + 40.0),
            (hx, hy),
            float(rng.uniform(24, 38)) * layout.px_per_mm / 0.6,
            sleeve,
            skin,
            long_sleeve,
            held,
            float(rng.uniform(0.5, 1.0)) if held else float(rng.uniform(0, 0.4)),
        )
        hand_oid = ids.new(cls_of["hand"])
        item_oids = [ids.new(cls_of[s]) for s in held]
        draw_arm(cv, arm, layout, store.products, hand_oid, item_oids)
    labels = _labels(cv, ids, n_items)
    return _finish(cv.img, rng), labels


def _in_view(view: FloorView, xy: tuple[float, float], margin: float = 0.05) -> bool:
    u, v = view.to_px([xy])[0]
    w, h = view.size
    return bool(-margin * w <= u <= (1 + margin) * w and -margin * h <= v <= (1 + margin) * h)


def _overhead_poses(store: Store, view: FloorView, rng: np.random.Generator) -> list[PersonPose]:
    """People as the overhead cameras see them in a store, not only scattered on the floor:
    walking anywhere, standing at a shelf reaching into a lane (their own or, arms crossed, the
    neighbour's), side by side with another shopper at the same shelf, and face to face handing
    something over. A detector trained on scattered people alone misses the shoppers that
    matter most, the ones at a shelf with an arm in it."""
    w, h = view.size
    lanes = [lid for lid in store.lanes if _in_view(view, stand_point(store, lid))]
    poses: list[PersonPose] = []
    for _ in range(int(rng.integers(1, 7))):
        mode = rng.random()
        if lanes and mode < 0.5:  # at a shelf, maybe with a neighbour
            lid = lanes[int(rng.integers(len(lanes)))]
            lane = store.lanes[lid]
            row = sorted(
                (x for x in store.lanes.values() if x.gondola == lane.gondola),
                key=lambda x: x.column,
            )
            near = [x.id for x in row if 0 < abs(x.column - lane.column) <= 2]
            heading = facing_shelf(store, lid) + float(rng.normal(0, 0.15))
            xy = stand_point(store, lid, float(rng.uniform(-0.25, 0.25)))
            target = lid if not near or rng.random() < 0.6 else near[int(rng.integers(len(near)))]
            reach = store.lane_front_xy_m(target) if rng.random() < 0.8 else None
            poses.append(PersonPose(xy, heading, reach, 0.0))
            if near and rng.random() < 0.5:
                other = near[int(rng.integers(len(near)))]
                crossing = rng.random() < 0.5
                reach2 = store.lane_front_xy_m(lid if crossing else other)
                poses.append(
                    PersonPose(
                        stand_point(store, other, float(rng.uniform(-0.15, 0.15))),
                        facing_shelf(store, other) + float(rng.normal(0, 0.15)),
                        reach2 if rng.random() < 0.85 else None,
                        0.0,
                    )
                )
        elif mode < 0.6:  # two shoppers face to face, one handing something over
            u, v = float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h)
            giver = view.to_floor((u, v))
            ang = float(rng.uniform(0, 2 * math.pi))
            gap = float(rng.uniform(0.45, 0.8))
            taker = (giver[0] + gap * math.cos(ang), giver[1] + gap * math.sin(ang))
            poses.append(PersonPose(giver, ang, taker, 0.0))
            back = giver if rng.random() < 0.3 else None
            poses.append(PersonPose(taker, ang + math.pi, back, 0.0))
        else:  # walking or standing anywhere
            u, v = float(rng.uniform(0.05, 0.95) * w), float(rng.uniform(0.05, 0.95) * h)
            xy = view.to_floor((u, v))
            heading = float(rng.uniform(0, 2 * math.pi))
            reach = None
            if rng.random() < 0.3:
                a = heading + float(rng.uniform(-0.5, 0.5))
                reach = (xy[0] + 0.6 * math.cos(a), xy[1] + 0.6 * math.sin(a))
            poses.append(PersonPose(xy, heading, reach, float(rng.uniform(-1, 1))))
    return poses[:8]


def render_overhead_sample(store: Store, rng: np.random.Generator) -> tuple[U8, list[Label]]:
    """A random overhead image with one to eight people (see :func:`_overhead_poses`)."""
    person_cls = class_names(store).index("person")
    n_items = len(store.cfg.products)
    cams = [c for c in store.cfg.cameras if c.kind == "overhead" and c.homography is not None]
    cam = cams[int(rng.integers(len(cams)))]
    view = FloorView(cam, store)
    cv = Canvas(view.draw_floor(seed=int(rng.integers(1 << 30))), track_ids=True)
    ids = _Ids()
    for pose in _overhead_poses(store, view, rng):
        draw_person(cv, view, PersonLook.random(rng), pose, ids.new(person_cls))
    labels = _labels(cv, ids, n_items)
    return _finish(cv.img, rng), labels


def render_sample(store: Store, rng: np.random.Generator) -> tuple[U8, list[Label]]:
    if rng.random() < OVERHEAD_SHARE:
        return render_overhead_sample(store, rng)
    return render_shelf_sample(store, rng)


def _yolo_lines(labels: list[Label], w: int, h: int) -> str:
    rows = []
    for lb in labels:
        x0, y0, x1, y1 = lb.box
        rows.append(
            f"{lb.cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
            f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
        )
    return "\n".join(rows) + ("\n" if rows else "")


def write_split(store: Store, out: Path, split: str, images: int, seed: int) -> int:
    """Render ``images`` samples from ``seed`` into ``out/images/split`` and labels."""
    rng = np.random.Generator(np.random.PCG64(seed))
    img_dir = out / "images" / split
    lbl_dir = out / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    boxes = 0
    for i in range(images):
        img, labels = render_sample(store, rng)
        name = f"{split}_{seed}_{i:06d}"
        if not cv2.imwrite(str(img_dir / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write {img_dir / name}.jpg; check the disk and permissions")
        h, w = img.shape[:2]
        (lbl_dir / f"{name}.txt").write_text(_yolo_lines(labels, w, h))
        boxes += len(labels)
    return boxes


def write_data_yaml(store: Store, out: Path) -> Path:
    names = class_names(store)
    lines = [
        f"path: {out.resolve()}",
        "train: images/train",
        "val: images/val",
        f"nc: {len(names)}",
        "names:",
    ]
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    p = out / "data.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def contact_sheet(out: Path, split: str, names: list[str], count: int = 16, cols: int = 4) -> Path:
    """A PNG grid of the first images of a split with their boxes and class names drawn."""
    imgs = sorted((out / "images" / split).glob("*.jpg"))[:count]
    tiles: list[U8] = []
    for p in imgs:
        img = cv2.imread(str(p))
        if img is None:
            raise OSError(f"cannot read {p}; the dataset folder is damaged")
        h, w = img.shape[:2]
        txt = (out / "labels" / split / (p.stem + ".txt")).read_text().split("\n")
        for row in filter(None, txt):
            c, cx, cy, bw, bh = row.split()
            x0 = int((float(cx) - float(bw) / 2) * w)
            y0 = int((float(cy) - float(bh) / 2) * h)
            x1 = int((float(cx) + float(bw) / 2) * w)
            y1 = int((float(cy) + float(bh) / 2) * h)
            k = int(c)
            col = (
                (0, 0, 255)
                if names[k] == "hand"
                else (255, 0, 255)
                if names[k] == "person"
                else (0, 255, 0)
            )
            cv2.rectangle(img, (x0, y0), (x1, y1), col, 1)
            cv2.putText(
                img, names[k], (x0 + 1, y0 + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.3, col, 1, cv2.LINE_AA
            )
        tiles.append(np.asarray(img, np.uint8))
    if not tiles:
        raise ValueError(f"no images in {out / 'images' / split}; write the dataset first")
    h, w = tiles[0].shape[:2]
    while len(tiles) % cols:
        tiles.append(np.zeros((h, w, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    sheet = np.vstack(rows)
    path = out / f"contact_sheet_{split}.png"
    cv2.imwrite(str(path), sheet)
    return path


def write_dataset(
    store: Store, out: Path, images: int, seed: int, val_images: int | None = None
) -> dict[str, int]:
    """Train split from ``seed``, val split from ``seed + 1000``; data.yaml and contact sheet."""
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")
    n_val = max(1, images // 5) if val_images is None else val_images
    out.mkdir(parents=True, exist_ok=True)
    train_boxes = write_split(store, out, "train", images, seed)
    val_boxes = write_split(store, out, "val", n_val, seed + VAL_SEED_OFFSET)
    write_data_yaml(store, out)
    contact_sheet(out, "train", class_names(store))
    return {
        "train_images": images,
        "train_boxes": train_boxes,
        "val_images": n_val,
        "val_boxes": val_boxes,
    }
