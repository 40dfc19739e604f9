"""Keys for the ZMQ transport: ZMQ's CURVE authenticates the client to the ns-3 server (and the
server to the client) and encrypts what they exchange.

Each side has a key pair, two files made by `cosim keys new NAME`: `NAME.key` holds the public key,
to hand to the other side, and `NAME.key_secret` the secret one (mode 0600, never to leave its host).
The server is started with its secret key and a folder of the public keys of the clients it lets in
(`--keys server.key_secret --allow DIR`); a client names its own secret key and the server's public
key (`ns3_client_key`, `ns3_server_key`). A client whose key is not in the folder is refused before
it can send anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from cosim.simulator.scenario import ConfigError


def new_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write `NAME.key` (public) and `NAME.key_secret` (secret, mode 0600) into `folder`; refuse to
    overwrite a key pair that exists."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"key name {name!r}: letters, digits, - and _ only")
    folder = Path(folder).expanduser()
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigError(f"{path} exists; choose another name or remove the old pair first")
    folder.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0o077)  # the secret key is never readable by others, not even for a moment
    try:
        made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(folder, name))
    finally:
        os.umask(umask)
    os.chmod(made_public, 0o644)
    return made_public, made_secret


@dataclass(frozen=True)
class KeyPair:
    """One side's CURVE keys (Z85 text, as ZMQ's socket options take them)."""

    public: bytes
    secret: bytes

    @classmethod
    def load(cls, secret_file: Path | str) -> KeyPair:
        """The pair in a `NAME.key_secret` file."""
        public, secret = _load(secret_file, "secret key")
        if secret is None:
            raise ConfigError(f"{secret_file} holds a public key only; give the NAME.key_secret file "
                              "that `cosim keys new NAME` wrote")
        return cls(public, secret)


def public_key(path: Path | str) -> bytes:
    """The public key in a `NAME.key` (or `NAME.key_secret`) file."""
    return _load(path, "public key")[0]


def allowed_keys(folder: Path | str) -> list[Path]:
    """The public key files in `folder`: the clients a server lets in."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory of allowed clients' public keys")
    keys = sorted(folder.glob("*.key"))
    if not keys:
        raise ConfigError(f"{folder} holds no public key (*.key): no client could connect; copy each "
                          "client's NAME.key (made by `cosim keys new NAME`) into it")
    for key in keys:
        public_key(key)
    return keys


def _load(path: Path | str, what: str) -> tuple[bytes, bytes | None]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: no such {what} file (`cosim keys new NAME` makes a pair)")
    try:
        return zmq.auth.load_certificate(path)
    except (ValueError, OSError, zmq.ZMQError) as e:
        raise ConfigError(f"{path} is not a key file written by `cosim keys new`: {e}") from None
