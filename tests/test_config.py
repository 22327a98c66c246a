"""Store config checks: each kind of error is reported with file:line, key path and a hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from walkout.config import ConfigError, load_store, parse_store

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo-store.yaml"
TEXT = DEMO.read_text()


def line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in the config")


def broken(old: str, new: str, count: int = 1) -> str:
    assert TEXT.count(old) >= count, f"{old!r} not found {count} times in the demo config"
    return TEXT.replace(old, new, count)


def test_demo_store_is_valid_and_as_rich_as_promised() -> None:
    store = load_store(DEMO)
    c = store.cfg
    assert len(c.gondolas) >= 3 and len(c.lanes) >= 24 and len(c.products) >= 20
    assert sum(cam.kind == "overhead" for cam in c.cameras) >= 2
    assert {g.kind for g in c.gates} == {"entry", "exit"} and len(c.nodes) >= 2
    seen = {lane for cam in c.cameras for lane in cam.lanes}
    assert seen == {lane.id for lane in c.lanes}, "shelf cameras must see every lane"
    assert all(lane.plate for lane in c.lanes), "one plate per lane"
    weights = [p.unit_weight_g for p in c.products]
    assert len(weights) > len(set(weights)), "at least one equal-weight pair"
    looks = [(p.packaging.shape, tuple(p.packaging.colors)) for p in c.products]
    assert len(looks) - len(set(looks)) >= 2, "at least two look-alike pairs"
    assert all(isinstance(p.price_minor, int) for p in c.products)


# Each row: what is broken, the text edit, the expected message, the key path, the line needle.
CASES = [
    (
        "unknown key",
        ("    tax_class: food\n", "    tax_class: food\n    colour: red\n"),
        "unknown key 'colour' in Product",
        "products[6].colour",
        "colour: red",
    ),
    (
        "misspelt key gets a suggestion",
        ("    unit_weight_g: 345.0", "    unit_weight: 345.0"),
        "did you mean 'unit_weight_g'",
        "products[0].unit_weight",
        "unit_weight: 345.0",
    ),
    (
        "wrong type: float price",
        ("    price_minor: 99\n", "    price_minor: 0.99\n"),
        "expected an integer, got float 0.99",
        "products[0].price_minor",
        "price_minor: 0.99",
    ),
    (
        "wrong type: string for a number",
        ("    weight_sd_g: 3.0\n", "    weight_sd_g: heavy\n"),
        "expected a number, got str 'heavy'",
        "products[0].weight_sd_g",
        "weight_sd_g: heavy",
    ),
    (
        "out of range",
        ("rate_bp: 700", "rate_bp: 70000"),
        "must be <= 10000",
        "tax_classes[0].rate_bp",
        "rate_bp: 70000",
    ),
    (
        "bad literal",
        ("    kind: overhead\n", "    kind: ceiling\n"),
        "expected one of 'overhead', 'shelf', got str 'ceiling'",
        "cameras[6].kind",
        "kind: ceiling",
    ),
    (
        "lane names an unknown SKU",
        ("sku: cola-440, capacity", "sku: cola-44O, capacity"),
        "unknown SKU 'cola-44O'",
        "lanes[1].sku",
        "sku: cola-44O",
    ),
    (
        "camera on an unknown node",
        (
            "    node: edge-2\n    source: sim://cam-g3-a",
            "    node: edge-9\n    source: sim://cam-g3-a",
        ),
        "unknown node 'edge-9'",
        "cameras[4].node",
        "node: edge-9",
    ),
    (
        "duplicate id",
        ("{id: P-G1-L01, lane: G1-L01", "{id: P-G1-L00, lane: G1-L01"),
        "duplicate id 'P-G1-L00'",
        "plates[1].id",
        "{id: P-G1-L00, lane: G1-L01",
    ),
    (
        "lane polygon outside the image",
        ("G1-L00: [[64.0, 25], [314.0, 25]", "G1-L00: [[64.0, 25], [712.0, 25]"),
        "lies outside the camera's 640x360 image",
        "cameras[0].lanes.G1-L00[1]",
        "G1-L00: [[64.0, 25], [712.0, 25]",
    ),
    (
        "gondola off the floor",
        ("front_m: [[2.0, 7.6], [5.2, 7.6]]", "front_m: [[2.0, 7.6], [15.2, 7.6]]"),
        "lies outside the 10.0 x 9.0 m floor",
        "gondolas[0].front_m[1]",
        "[15.2, 7.6]",
    ),
    (
        "duplicate YAML key",
        ("store: {id: demo-001,", "store: {id: demo-001, id: demo-002,"),
        "duplicate key 'id'",
        "store.id",
        "store: {id: demo-001",
    ),
]


@pytest.mark.parametrize(
    ("what", "edit", "message", "path", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_each_kind_of_error_names_file_line_path_and_hint(
    what: str, edit: tuple[str, str], message: str, path: str, needle: str
) -> None:
    text = broken(*edit)
    with pytest.raises(ConfigError) as info:
        parse_store(text, "store.yaml")
    issues = [i for i in info.value.issues if message in str(i)]
    assert issues, f"{what}: expected {message!r} in:\n{info.value}"
    issue = issues[0]
    assert issue.path == path
    assert issue.file == "store.yaml"
    assert issue.line == line_of(text, needle), f"{what}: wrong line in {issue}"
    assert str(issue).startswith(f"store.yaml:{issue.line}: {path}: ")


def test_every_error_is_reported_not_just_the_first() -> None:
    text = broken("sku: cola-440, capacity", "sku: nope, capacity")
    text = text.replace("{id: edge-2, host", "{id: edge-3, host")
    with pytest.raises(ConfigError) as info:
        parse_store(text, "store.yaml")
    messages = [i.message for i in info.value.issues]
    assert any("unknown SKU 'nope'" in m for m in messages)
    # edge-2 is named by a plate, two cameras and more: all are reported, each on its own line.
    dangling = [i for i in info.value.issues if "unknown node 'edge-2'" in i.message]
    assert len(dangling) >= 3
    assert len({i.line for i in dangling}) == len(dangling)


def test_missing_key_points_at_its_parent_and_says_what_to_add() -> None:
    text = broken("    weight_sd_g: 3.0\n", "")
    with pytest.raises(ConfigError) as info:
        parse_store(text, "store.yaml")
    (issue,) = info.value.issues
    assert "missing required key 'weight_sd_g'" in issue.message
    assert issue.hint == "add 'weight_sd_g:'"
    assert issue.line == line_of(text, "  - sku: cola-330")


def test_yaml_syntax_error_and_unsafe_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"store.yaml:\d+: <top>: YAML syntax error"):
        parse_store("store: {id: [\n", "store.yaml")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        parse_store("x: !!python/object/apply:os.system ['true']\n", "store.yaml")


def test_config_check_cli_prints_ok_or_every_error(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "walkout.cli", "config", "check", str(DEMO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ": OK (24 products, 24 lanes" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(broken("sku: cola-440, capacity", "sku: cola-44O, capacity"))
    out = subprocess.run(
        [sys.executable, "-m", "walkout.cli", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert f"{bad}:{line_of(bad.read_text(), 'cola-44O')}: lanes[1].sku: unknown SKU" in out.stderr
    assert "hint: did you mean 'cola-440'?" in out.stderr
