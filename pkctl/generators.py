"""``pkctl create configmap|secret``: build a ConfigMap or Secret from flags, as kubectl does.

kubectl's generators read their data from the command line and the local
disk, so this is client-side work the server cannot do for us:

- ``--from-literal=KEY=VALUE``, ``--from-file=[KEY=]PATH`` (a directory adds
  each regular file in it, keyed by its name), ``--from-env-file=PATH``
  (``KEY=VALUE`` lines; ``#`` comments and blank lines skipped; a bare
  ``KEY`` takes its value from this process's environment);
- a ConfigMap keeps UTF-8 file contents in ``data`` and anything else in
  ``binaryData``; a Secret base64-encodes everything into ``data``;
- ``secret tls`` reads a PEM certificate and key and checks that they belong
  together (through ``ssl``, as kubectl's ``tls.X509KeyPair`` does);
- ``secret docker-registry`` writes a ``.dockerconfigjson`` with one
  ``auths`` entry (``auth`` = base64 of ``user:password``).

Keys are checked here with kubectl's message (the server checks them again),
a key given twice is an error, and nothing read from a file or a literal is
ever printed unless ``-o yaml|json`` asks for the object.
"""
from __future__ import annotations

import base64
import json
import os
import re
import ssl

from .errors import CLIError
from .workloads import create_built

CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
DEFAULT_DOCKER_SERVER = "https://index.docker.io/v1/"  # kubectl's default for --docker-server
SECRET_KINDS = ("generic", "tls", "docker-registry")


def _check_key(key: str, kind: str) -> None:
    if not CONFIG_KEY.match(key) or key in (".", ".."):
        raise CLIError(f'"{key}" is not a valid key name for a {kind}: a valid config key must consist of '
                       "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                       "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"error reading {path}: {e.strerror or e}") from None


def _literal(item: str) -> tuple[str, bytes]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise CLIError(f"invalid literal source {item}, expected key=value")
    return key, value.encode()


def _files(item: str) -> list[tuple[str, bytes]]:
    key, sep, path = item.partition("=")
    if not sep:
        key, path = "", item
    elif not key or not path:
        raise CLIError(f"key names or file paths cannot be empty: {item}")
    if os.path.isdir(path):
        if key:
            raise CLIError(f"cannot give a key name for a directory path: {path}")
        out = []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                out.append((name, _read(full)))
        return out
    if not os.path.exists(path):
        raise CLIError(f"error reading {path}: no such file or directory")
    return [(key or os.path.basename(path), _read(path))]


def _env_file(path: str) -> list[tuple[str, bytes]]:
    out = []
    for n, raw in enumerate(_read(path).decode("utf-8", "replace").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            value = os.environ.get(key, "")
        if not key or " " in key:
            raise CLIError(f'{path}: line {n}: invalid environment variable name "{key}"')
        out.append((key, value.encode()))
    return out


def _sources(args) -> list[tuple[str, bytes]]:
    items: list[tuple[str, bytes]] = []
    for lit in args.from_literal:
        items.append(_literal(lit))
    for f in args.from_file:
        items.extend(_files(f))
    for f in args.from_env_file:
        items.extend(_env_file(f))
    return items


def _metadata(args) -> dict:
    return {"name": args.what[-1], "namespace": args.namespace_for_create}


def build_configmap(args) -> dict:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(args)}
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, value in _sources(args):
        _check_key(key, "ConfigMap")
        if key in data or key in binary:
            raise CLIError(f'cannot add key "{key}", another key by that name already exists in '
                           f'{"Data" if key in data else "BinaryData"} for ConfigMap "{args.what[-1]}"')
        try:
            data[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(value).decode()
    if data:
        cm["data"] = data
    if binary:
        cm["binaryData"] = binary
    if args.immutable:
        cm["immutable"] = True
    return cm


def _secret(args, type_: str, items: list[tuple[str, bytes]]) -> dict:
    data: dict[str, str] = {}
    for key, value in items:
        _check_key(key, "Secret")
        if key in data:
            raise CLIError(f'cannot add key {key}, another key by that name already exists in Data for '
                           f'Secret "{args.what[-1]}"')
        data[key] = base64.b64encode(value).decode()
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(args), "type": type_}
    if data:
        s["data"] = data
    if args.immutable:
        s["immutable"] = True
    return s


def _tls_items(args) -> list[tuple[str, bytes]]:
    if not args.cert or not args.key:
        raise CLIError('required flag(s) "cert", "key" not set' if not (args.cert or args.key)
                       else f'required flag(s) "{"key" if args.cert else "cert"}" not set')
    cert, key = _read(args.cert), _read(args.key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(args.cert, args.key)
    except ssl.SSLError as e:
        raise CLIError(f"failed to load key pair {e.reason or e}: the certificate and key must be PEM files "
                       "that belong together") from None
    return [("tls.crt", cert), ("tls.key", key)]


def _docker_items(args) -> list[tuple[str, bytes]]:
    if args.from_file:
        return _sources(args)
    missing = [f for f, v in (("docker-username", args.docker_username), ("docker-password", args.docker_password))
               if not v]
    if missing:
        raise CLIError(f'required flag(s) {", ".join(chr(34) + m + chr(34) for m in missing)} not set')
    server = args.docker_server or DEFAULT_DOCKER_SERVER
    auth = base64.b64encode(f"{args.docker_username}:{args.docker_password}".encode()).decode()
    entry = {"username": args.docker_username, "password": args.docker_password, "auth": auth}
    if args.docker_email:
        entry["email"] = args.docker_email
    return [(".dockerconfigjson", json.dumps({"auths": {server: entry}}, separators=(",", ":")).encode())]


def build_secret(args) -> dict:
    if len(args.what) != 3 or args.what[1] not in SECRET_KINDS:
        raise CLIError("pkctl create secret needs a kind and a name: pkctl create secret "
                       "generic|tls|docker-registry NAME [flags]")
    kind = args.what[1]
    if kind == "tls":
        return _secret(args, "kubernetes.io/tls", _tls_items(args))
    if kind == "docker-registry":
        return _secret(args, "kubernetes.io/dockerconfigjson", _docker_items(args))
    return _secret(args, args.type or "Opaque", _sources(args))


BUILDERS = {"configmap": ("configmaps", build_configmap), "cm": ("configmaps", build_configmap),
            "secret": ("secrets", build_secret)}


def run(ctx, args) -> int:
    """``pkctl create KIND ...`` (the generators); ``create -f`` goes to pkctl.apply."""
    what = args.what[0]
    if what not in BUILDERS:
        raise CLIError(f'unknown kind to create: "{what}" (pkctl create configmap|secret NAME, or -f FILE)')
    if what in ("configmap", "cm") and len(args.what) != 2:
        raise CLIError("pkctl create configmap needs exactly one name: pkctl create configmap NAME [flags]")
    args.namespace_for_create = ctx.namespace
    plural, build = BUILDERS[what]
    obj = build(args)
    rt = ctx.discovery.resolve(plural)
    return create_built(ctx, rt, ctx.namespace, obj, "pkctl-create", args, "created")
