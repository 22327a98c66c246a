"""CurveZMQ keys: ``walkout keys gen`` and the loaders the link uses.

Each identity (an edge node id, ``fusion``, ``billing``) has ``NAME.key`` (public, safe to copy
to peers) and ``NAME.key_secret`` (secret, mode 0600, stays on its machine) in the store's
``security.keys_dir``. A server allowlists clients by public key and binds each key to the one
``source_id`` that key may speak for.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth


class KeyError_(Exception):
    """A key file is missing or unreadable; the message says which and how to make it."""


@dataclass(frozen=True)
class KeyPair:
    name: str
    public: bytes  # z85, 40 bytes
    secret: bytes | None


def generate(keys_dir: Path, names: list[str], force: bool = False) -> list[Path]:
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    written: list[Path] = []
    for name in names:
        public_file = keys_dir / f"{name}.key"
        secret_file = keys_dir / f"{name}.key_secret"
        if public_file.exists() and secret_file.exists() and not force:
            continue
        public, secret = zmq.curve_keypair()
        public_file.write_text(f'curve\n    public-key = "{public.decode()}"\n')
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f'curve\n    public-key = "{public.decode()}"\n'
                f'    secret-key = "{secret.decode()}"\n'
            )
        written += [public_file, secret_file]
    return written


def load(keys_dir: Path, name: str, secret: bool) -> KeyPair:
    path = keys_dir / (f"{name}.key_secret" if secret else f"{name}.key")
    if not path.exists():
        raise KeyError_(
            f"no CurveZMQ key for '{name}' at {path}; "
            f"run: walkout keys gen --config <store.yaml> (or copy {name}'s key files there)"
        )
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read CurveZMQ key {path}: {exc}") from exc
    if secret and not secret_key:
        raise KeyError_(f"{path} holds no secret key; regenerate it with walkout keys gen")
    return KeyPair(name, public, secret_key if secret else None)


def allowlist(keys_dir: Path, names: list[str]) -> dict[bytes, str]:
    """Public key (z85) -> the source_id it may speak for."""
    out: dict[bytes, str] = {}
    for name in names:
        pair = load(keys_dir, name, secret=False)
        if pair.public in out:
            raise KeyError_(f"{name} and {out[pair.public]} share one public key; regenerate one")
        out[pair.public] = name
    return out


def identities(store_cfg: Any) -> list[str]:
    return [n.id for n in store_cfg.nodes] + ["fusion", "billing"]


def _gen(args: argparse.Namespace) -> int:
    from walkout.config import ConfigError, load_store

    try:
        store = load_store(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    keys_dir = Path(args.out) if args.out else store.keys_dir
    written = generate(keys_dir, identities(store.cfg), force=args.force)
    print(
        f"{len(written) // 2} key pairs written to {keys_dir} ({len(identities(store.cfg))} needed)"
    )
    return 0


def register(sub: Any, area: str, help_text: str) -> None:
    p = sub.add_parser(area, help=help_text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    gen = cmds.add_parser("gen", help="write missing key pairs for every node and service")
    gen.add_argument("--config", required=True, help="store config (names the identities)")
    gen.add_argument("--out", help="folder (default: the config's security.keys_dir)")
    gen.add_argument("--force", action="store_true", help="replace existing keys")
    gen.set_defaults(handler=_gen)
