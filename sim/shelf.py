"""The shelf-camera view: a gondola section with lanes of product facings, arms and hands.

A shelf camera hangs above the aisle and looks at two bays by two levels of a gondola; every
lane it sees is a quadrilateral in its image (from the store config). Inside a lane the units
stand in two rows (front and back, the back row smaller, higher and in shade, offset by part of
a facing so each unit stays countable); a shelf lip with a price tag runs along the front. Arms
enter from the bottom edge of the image (the aisle side) and reach into a lane.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from sim.canvas import NO_ID, Canvas
from sim.sprites import Sprite, hex_bgr, product_sprite, shade
from walkout.schema import Camera, Product

F64 = npt.NDArray[np.float64]
BGR = tuple[int, int, int]

LIP_FRAC = 0.11  # share of the lane height taken by the shelf lip
BACK_SCALE = 0.86
BACK_RISE = 0.12  # how much higher (share of the lane height) the back row stands
SKIN_TONES: tuple[BGR, ...] = (
    (173, 205, 241),
    (140, 180, 224),
    (110, 150, 200),
    (80, 115, 170),
    (60, 85, 130),
    (45, 60, 95),
    (150, 190, 235),
)
CLOTHES: tuple[BGR, ...] = (
    (40, 40, 40),
    (200, 200, 200),
    (120, 60, 20),
    (30, 30, 140),
    (60, 120, 30),
    (150, 110, 60),
    (90, 90, 150),
    (20, 90, 200),
    (160, 60, 120),
    (70, 70, 70),
    (180, 150, 90),
    (40, 160, 200),
)


@dataclass(frozen=True)
class ShelfStyle:
    """Colours of the gondola fixtures (so training images are not all one store)."""

    backdrop: BGR = (188, 190, 192)
    frame: BGR = (80, 82, 86)
    shelf: BGR = (206, 208, 210)
    lip: BGR = (235, 235, 235)
    header: BGR = (40, 90, 170)
    floor: BGR = (150, 170, 185)

    @staticmethod
    def random(rng: np.random.Generator) -> ShelfStyle:
        def jit(c: BGR, amount: int, tint: int = 8) -> BGR:
            g = int(rng.integers(-amount, amount + 1))  # mostly brightness, a little tint
            d = rng.integers(-tint, tint + 1, 3)
            return (
                int(np.clip(c[0] + g + d[0], 0, 255)),
                int(np.clip(c[1] + g + d[1], 0, 255)),
                int(np.clip(c[2] + g + d[2], 0, 255)),
            )

        base = ShelfStyle()
        headers: tuple[BGR, ...] = (
            (40, 90, 170),
            (30, 120, 40),
            (120, 40, 30),
            (20, 20, 20),
            (0, 140, 220),
        )
        return ShelfStyle(
            backdrop=jit(base.backdrop, 50),
            frame=jit(base.frame, 30),
            shelf=jit(base.shelf, 30),
            lip=jit(base.lip, 20, 4),
            header=headers[int(rng.integers(len(headers)))],
            floor=jit(base.floor, 30),
        )


@dataclass(frozen=True)
class Slot:
    """Where one unit stands: bottom-centre pixel, scale against the camera's px/mm, row."""

    cx: float
    base_y: float
    scale: float
    back: bool


@dataclass(frozen=True)
class LaneView:
    lane_id: str
    quad: F64  # 4x2: TL, TR, BR, BL
    capacity: int
    slots: tuple[Slot, ...]  # back row first, then the front row: count n fills slots[:n]

    def point(self, u: float, v: float) -> tuple[float, float]:
        """Bilinear point of the quad at (u across, v down), both 0..1."""
        q = self.quad
        top = q[0] + (q[1] - q[0]) * u
        bot = q[3] + (q[2] - q[3]) * u
        p = top + (bot - top) * v
        return float(p[0]), float(p[1])

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        x0, y0 = np.floor(self.quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.quad.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1) + 1, int(y1) + 1

    @property
    def height_px(self) -> float:
        return float(self.quad[3, 1] - self.quad[0, 1])


def _lane_slots(quad: F64, capacity: int) -> tuple[Slot, ...]:
    front_n = math.ceil(capacity / 2)
    back_n = capacity - front_n
    margin = 0.05
    spacing = (1 - 2 * margin) / front_n
    lane = LaneView("", quad, capacity, ())
    v_front = 1.0 - LIP_FRAC * 0.45
    v_back = v_front - BACK_RISE
    slots: list[Slot] = []
    for j in range(back_n):
        u = margin + (j + 0.5) * spacing + 0.34 * spacing
        u = 0.5 + (u - 0.5) * 0.92
        x, y = lane.point(u, v_back)
        slots.append(Slot(x, y, BACK_SCALE, True))
    for i in range(front_n):
        u = margin + (i + 0.5) * spacing
        x, y = lane.point(u, v_front)
        slots.append(Slot(x, y, 1.0, False))
    return tuple(slots)


@dataclass
class ShelfLayout:
    """The lanes one shelf camera sees and the pixel scale its products are drawn at."""

    camera_id: str
    size: tuple[int, int]
    lanes: dict[str, LaneView]
    px_per_mm: float
    style: ShelfStyle = field(default_factory=ShelfStyle)

    @staticmethod
    def build(
        camera: Camera,
        lane_skus: Mapping[str, Sequence[str]],
        capacities: dict[str, int],
        products: dict[str, Product],
        style: ShelfStyle | None = None,
        quads: dict[str, F64] | None = None,
    ) -> ShelfLayout:
        """Lay out a camera's lanes; the scale fits the largest unit any lane may hold."""
        lanes: dict[str, LaneView] = {}
        scale = 10.0
        for lane_id, poly in camera.lanes.items():
            quad = quads[lane_id] if quads else np.asarray(poly, np.float64)
            cap = capacities[lane_id]
            view = LaneView(lane_id, quad, cap, _lane_slots(quad, cap))
            lanes[lane_id] = view
            width = float(min(quad[1, 0] - quad[0, 0], quad[2, 0] - quad[3, 0]))
            front_n = math.ceil(cap / 2)
            room_h = view.height_px * (1 - LIP_FRAC * 0.45 - BACK_RISE) - 3
            for sku in lane_skus[lane_id]:
                w_mm, h_mm = products[sku].packaging.size_mm
                scale = min(scale, room_h / (h_mm * BACK_SCALE), 0.92 * width / (front_n * w_mm))
        return ShelfLayout(camera.id, camera.resolution, lanes, scale, style or ShelfStyle())


def draw_background(layout: ShelfLayout) -> npt.NDArray[np.uint8]:
    """The gondola without products: frame, header, back panels, shelf floors, aisle."""
    w, h = layout.size
    st = layout.style
    img = np.empty((h, w, 3), np.uint8)
    img[:] = st.frame
    cv = Canvas(img)
    ys = [v.quad[:, 1] for v in layout.lanes.values()]
    top = float(min(y.min() for y in ys))
    bottom = float(max(y.max() for y in ys))
    cv.poly(np.array([[0, 0], [w, 0], [w, top - 4], [0, top - 4]]), st.header)
    cv.poly(np.array([[0, bottom + 3], [w, bottom + 3], [w, h], [0, h]]), st.floor)
    for view in layout.lanes.values():
        cv.poly(view.quad, st.backdrop)
        # pegboard holes on the back panel
        x0, y0, x1, y1 = view.bbox
        yy = np.arange(y0 + 6, int(y0 + (y1 - y0) * 0.55), 12)
        xx = np.arange(x0 + 8, x1 - 4, 14)
        hole = shade(st.backdrop, 0.72)
        for y in yy:
            for x in xx:
                if (
                    cv2.pointPolygonTest(view.quad.astype(np.float32), (float(x), float(y)), False)
                    > 0
                ):
                    cv2.circle(img, (int(x), int(y)), 1, hole, -1, cv2.LINE_AA)
        # the shelf floor, seen slightly from above, darker toward the back
        v_back = 1.0 - LIP_FRAC * 0.45 - BACK_RISE - 0.05
        a, b = view.point(0, v_back), view.point(1, v_back)
        c, d = view.point(1, 1), view.point(0, 1)
        cv.poly([a, b, c, d], st.shelf)
        floor_shade = shade(st.shelf, 0.8)
        cv.poly([a, b, view.point(1, v_back + 0.03), view.point(0, v_back + 0.03)], floor_shade)
    return img


def draw_units(
    cv: Canvas,
    layout: ShelfLayout,
    view: LaneView,
    contents: Sequence[str],
    products: dict[str, Product],
    oids: Sequence[int] | None = None,
) -> None:
    """The units standing in a lane (``contents[i]`` is the SKU in slot i)."""
    order = list(range(min(len(contents), len(view.slots))))
    for i in order:  # back row slots come first, so the front row is drawn over it
        slot = view.slots[i]
        sku = contents[i]
        sp = product_sprite(products[sku].packaging, sku, layout.px_per_mm * slot.scale)
        x0 = round(slot.cx - sp.width / 2)
        y0 = round(slot.base_y - sp.height)
        gain = 0.78 if slot.back else 1.0
        cv.sprite(sp, x0, y0, oids[i] if oids is not None else NO_ID, gain)


def draw_lip(cv: Canvas, layout: ShelfLayout, view: LaneView, price_text: str) -> None:
    """The shelf lip along the lane front with a price tag (drawn over the unit bottoms)."""
    st = layout.style
    v0 = 1.0 - LIP_FRAC
    cv.poly([view.point(0, v0), view.point(1, v0), view.point(1, 1), view.point(0, 1)], st.lip)
    cv.poly(
        [view.point(0, 1 - 0.02), view.point(1, 1 - 0.02), view.point(1, 1), view.point(0, 1)],
        shade(st.lip, 0.6),
    )
    # price tag: yellow label with the price and a barcode
    tl = view.point(0.08, v0 + 0.012)
    br = view.point(0.3, 1 - 0.025)
    x0, y0, x1, y1 = int(tl[0]), int(tl[1]), int(br[0]), int(br[1])
    if x1 - x0 > 8 and y1 - y0 > 4:
        cv2.rectangle(cv.img, (x0, y0), (x1, y1), (80, 230, 255), -1)
        fs = max(0.25, (y1 - y0) / 26)
        cv2.putText(
            cv.img,
            price_text,
            (x0 + 2, y1 - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            fs,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
        bx = x1 + 4
        for k in range(12):
            if (k * 7) % 3:
                cv2.line(cv.img, (bx + k * 2, y0 + 1), (bx + k * 2, y1 - 1), (30, 30, 30), 1)


@dataclass(frozen=True)
class ArmPose:
    """One arm in a shelf-camera image. ``hand`` is the palm centre; items are SKUs held."""

    entry: tuple[float, float]
    hand: tuple[float, float]
    width_px: float
    sleeve: BGR
    skin: BGR
    long_sleeve: bool = True
    held: tuple[str, ...] = ()
    closed: float = 0.0  # 0 open hand .. 1 closed grip


def draw_arm(
    cv: Canvas,
    arm: ArmPose,
    layout: ShelfLayout,
    products: dict[str, Product],
    hand_oid: int = NO_ID,
    item_oids: Sequence[int] | None = None,
) -> None:
    """An arm from the bottom edge to the hand, the held items, then the hand over them."""
    ex, ey = arm.entry
    hx, hy = arm.hand
    d = np.array([hx - ex, hy - ey], np.float64)
    length = float(np.hypot(*d)) or 1.0
    d /= length
    n = np.array([-d[1], d[0]])
    w = arm.width_px
    palm_len = w * 1.15
    wrist = np.array([hx, hy]) - d * palm_len * 0.55
    elbow = np.array([ex, ey]) + (wrist - np.array([ex, ey])) * 0.5 + n * 0.06 * length
    forearm_c = arm.sleeve if arm.long_sleeve else arm.skin
    cv.capsule((ex, ey), (float(elbow[0]), float(elbow[1])), w * 1.3, arm.sleeve)
    cv.capsule((float(elbow[0]), float(elbow[1])), (float(wrist[0]), float(wrist[1])), w, forearm_c)
    if arm.long_sleeve:  # cuff
        cuff = wrist - d * w * 0.5
        cv.capsule(
            (float(cuff[0]), float(cuff[1])),
            (float(wrist[0]), float(wrist[1])),
            w * 1.02,
            shade(arm.sleeve, 0.8),
        )
    # held items sit in front of the fingers, upright, partly covered by the grip
    for k, sku in enumerate(arm.held):
        sp: Sprite = product_sprite(products[sku].packaging, sku, layout.px_per_mm * 1.12)
        spread = (k - (len(arm.held) - 1) / 2) * sp.width * 0.9
        lift = palm_len * 0.5 + sp.height * 0.3  # the grip covers the lower part only
        cx = hx + d[0] * lift + n[0] * spread
        cy = hy + d[1] * lift + n[1] * spread
        oid = item_oids[k] if item_oids is not None else NO_ID
        cv.sprite(sp, round(cx - sp.width / 2), round(cy - sp.height / 2), oid)
    skin = arm.skin
    dark = shade(skin, 0.82)
    angle = math.degrees(math.atan2(d[1], d[0]))
    cv.ellipse((hx, hy), (palm_len * 0.55, w * 0.62), angle, skin, hand_oid)
    reach = palm_len * (0.75 - 0.4 * arm.closed)
    base = np.array([hx, hy]) + d * palm_len * 0.35
    fw = w * 0.27
    for k, off in enumerate((-0.42, -0.14, 0.14, 0.42)):
        root = base + n * off * w * 1.1
        tip = root + d * reach * (0.88 if k in (0, 3) else 1.0) + n * off * w * 0.25
        cv.capsule(
            (float(root[0]), float(root[1])), (float(tip[0]), float(tip[1])), fw, dark, hand_oid
        )
        cv.capsule(
            (float(root[0]), float(root[1])),
            (float(tip[0]), float(tip[1])),
            fw * 0.7,
            skin,
            hand_oid,
        )
    side = 1.0 if (hx - ex) >= 0 else -1.0
    t_root = np.array([hx, hy]) - n * side * w * 0.5
    t_tip = t_root + d * palm_len * 0.45 - n * side * w * (0.45 - 0.3 * arm.closed)
    cv.capsule(
        (float(t_root[0]), float(t_root[1])),
        (float(t_tip[0]), float(t_tip[1])),
        fw * 1.1,
        skin,
        hand_oid,
    )


def random_arm_colours(rng: np.random.Generator) -> tuple[BGR, BGR, bool]:
    """Sleeve colour, skin tone and whether the sleeve is long, for one person."""
    sleeve = CLOTHES[int(rng.integers(len(CLOTHES)))]
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    return sleeve, skin, bool(rng.random() < 0.6)


def price_text(product: Product) -> str:
    return f"{product.price_minor // 100}.{product.price_minor % 100:02d}"


def colour_of(hex_colour: str) -> BGR:
    return hex_bgr(hex_colour)
