"""Finding and reading the kubeconfig that tells a component where the API server is.

Every pocketkube process (scheduler, kubelet, proxy, pkctl ...) runs on its
own and finds the API server the way kubectl does, so one file written by
``pocketkube up`` serves them all and the stock ``kubectl`` too. Search order
(first hit wins, as in docs/design.md's kubeconfig seam):

1. the explicit path (``--kubeconfig``); naming a missing file is an error,
   never a silent fall-through to some other cluster;
2. ``$KUBECONFIG``, a colon-separated list: the first file that exists;
3. ``~/.kube/config``;
4. ``/var/lib/pocketkube/kubeconfig``.

Explicit ``server``/``token`` arguments override what the file says; with a
``server`` argument no file is needed at all. Only the subset of the format
pocketkube needs is read: ``current-context`` (or the ``context`` argument),
the cluster's ``server``, ``certificate-authority[-data]`` and
``insecure-skip-tls-verify``, the user's ``token``/``tokenFile`` and client
certificate/key (file or ``-data``), and the context's namespace. Inline
``-data`` values are written once to private temp files (deduplicated by
content, removed at exit) because ``ssl`` only loads certificates from paths.
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml

SYSTEM_KUBECONFIG = "/var/lib/pocketkube/kubeconfig"
DEFAULT_NAMESPACE = "default"

_FIX = "pass --kubeconfig, set KUBECONFIG, or run `pocketkube up`"


class ConfigError(Exception):
    """The kubeconfig is missing or unusable; the message names the fix."""


@dataclass
class Config:
    """Everything a client needs to reach and authenticate to one API server."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    client_cert_file: str | None = None
    client_key_file: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    source: str | None = None  # the kubeconfig file it came from, for messages

    def __repr__(self) -> str:  # never print the token
        token = "<set>" if self.token else None
        return (
            f"Config(server={self.server!r}, token={token}, ca_file={self.ca_file!r}, "
            f"insecure_skip_tls_verify={self.insecure_skip_tls_verify}, "
            f"namespace={self.namespace!r}, source={self.source!r})"
        )


def candidate_paths(kubeconfig: str | None = None) -> list[str]:
    """The paths looked at, in order (for the search and for error messages)."""
    if kubeconfig:
        return [os.path.expanduser(kubeconfig)]
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths.append(os.path.expanduser("~/.kube/config"))
    paths.append(SYSTEM_KUBECONFIG)
    return paths


def find_kubeconfig(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig file to use, or None when none exists.

    Raises ConfigError when an explicit path is given but missing.
    """
    if kubeconfig:
        path = os.path.expanduser(kubeconfig)
        if not os.path.isfile(path):
            raise ConfigError(f"kubeconfig {path!r} does not exist: {_FIX}")
        return path
    for path in candidate_paths():
        if os.path.isfile(path):
            return path
    return None


def load_config(
    kubeconfig: str | None = None,
    server: str | None = None,
    token: str | None = None,
    context: str | None = None,
) -> Config:
    """Resolve the API server's address and credentials (see the module docstring)."""
    path = find_kubeconfig(kubeconfig)
    if path is None:
        if server:
            return Config(server=_normalize_server(server), token=token or None)
        looked = ", ".join(candidate_paths())
        raise ConfigError(f"no kubeconfig found (looked at {looked}): {_FIX}")
    config = _config_from_file(path, context)
    if server:
        config.server = _normalize_server(server)
    if token:
        config.token = token
    return config


def _config_from_file(path: str, context_name: str | None) -> Config:
    try:
        with open(path, "rb") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read kubeconfig {path}: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping: {_FIX}")
    base_dir = os.path.dirname(os.path.abspath(path))

    contexts = _named(doc, "contexts", "context", path)
    clusters = _named(doc, "clusters", "cluster", path)
    users = _named(doc, "users", "user", path)

    name = context_name or doc.get("current-context") or ""
    if not name and len(contexts) == 1:
        name = next(iter(contexts))
    if not name:
        raise ConfigError(f"kubeconfig {path} has no current-context: pass --context or set one")
    if name not in contexts:
        raise ConfigError(f"kubeconfig {path} has no context named {name!r}")
    ctx = contexts[name]

    cluster_name = ctx.get("cluster") or ""
    if cluster_name not in clusters:
        raise ConfigError(f"kubeconfig {path}: context {name!r} names unknown cluster {cluster_name!r}")
    cluster = clusters[cluster_name]
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"kubeconfig {path}: cluster {cluster_name!r} has no server")

    user_name = ctx.get("user") or ""
    user = users.get(user_name, {}) if user_name else {}
    if user_name and user_name not in users:
        raise ConfigError(f"kubeconfig {path}: context {name!r} names unknown user {user_name!r}")

    return Config(
        server=_normalize_server(server),
        token=_token(user, base_dir, path),
        ca_file=_file_or_data(cluster, "certificate-authority", base_dir),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        client_cert_file=_file_or_data(user, "client-certificate", base_dir),
        client_key_file=_file_or_data(user, "client-key", base_dir),
        namespace=ctx.get("namespace") or DEFAULT_NAMESPACE,
        source=path,
    )


def _named(doc: dict, section: str, inner: str, path: str) -> dict[str, dict]:
    """``clusters: [{name: x, cluster: {...}}]`` -> ``{"x": {...}}``."""
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"kubeconfig {path}: {section} must be a list")
    out: dict[str, dict] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name"):
            body = entry.get(inner) or {}
            out[str(entry["name"])] = body if isinstance(body, dict) else {}
    return out


def _token(user: dict, base_dir: str, path: str) -> str | None:
    if user.get("token"):
        return str(user["token"]).strip()
    token_file = user.get("tokenFile")
    if token_file:
        token_path = _resolve(token_file, base_dir)
        try:
            with open(token_path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError as e:
            raise ConfigError(f"kubeconfig {path}: cannot read tokenFile {token_path}: {e}") from e
    return None


def _file_or_data(section: dict, key: str, base_dir: str) -> str | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            raw = base64.b64decode(data, validate=False)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"kubeconfig: {key}-data is not base64: {e}") from e
        return _materialize(raw, key)
    value = section.get(key)
    return _resolve(value, base_dir) if value else None


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


_materialized: dict[str, str] = {}


def _materialize(data: bytes, kind: str) -> str:
    """Write inline certificate data to a private temp file once per content."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    existing = _materialized.get(digest)
    if existing and os.path.exists(existing):
        return existing
    fd, name = tempfile.mkstemp(prefix=f"pocketkube-{kind}-", suffix=".pem")
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    _materialized[digest] = name
    return name


@atexit.register
def _cleanup_materialized() -> None:
    for name in _materialized.values():
        try:
            os.unlink(name)
        except OSError:
            pass
    _materialized.clear()


def _normalize_server(server: str) -> str:
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    return server


def kubeconfig_dict(
    server: str,
    token: str | None,
    namespace: str = DEFAULT_NAMESPACE,
    cluster_name: str = "pocketkube",
    *,
    ca_file: str | None = None,
    insecure_skip_tls_verify: bool = False,
) -> dict[str, Any]:
    """The standard kubeconfig document for one cluster, one user, one context."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file:
        cluster["certificate-authority"] = ca_file
    if insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    user_name = f"{cluster_name}-admin"
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{
            "name": cluster_name,
            "context": {"cluster": cluster_name, "user": user_name, "namespace": namespace},
        }],
        "current-context": cluster_name,
    }


def write_kubeconfig(
    path: str,
    server: str,
    token: str | None,
    namespace: str = DEFAULT_NAMESPACE,
    cluster_name: str = "pocketkube",
    *,
    ca_file: str | None = None,
    insecure_skip_tls_verify: bool = False,
) -> str:
    """Write a kubeconfig readable by pocketkube, kubectl and the official client.

    The file holds a credential, so it is created with mode 0600, and it is
    replaced atomically so a reader never sees half a file. Returns the path.
    """
    path = os.path.expanduser(path)
    doc = kubeconfig_dict(server, token, namespace, cluster_name,
                          ca_file=ca_file, insecure_skip_tls_verify=insecure_skip_tls_verify)
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


__all__ = [
    "Config", "ConfigError", "load_config", "find_kubeconfig", "candidate_paths",
    "write_kubeconfig", "kubeconfig_dict", "SYSTEM_KUBECONFIG",
]


def ssl_context(config: "Config") -> ssl.SSLContext | None:
    """The TLS context a kubeconfig asks for, or None for a plain-HTTP server.

    One place for every transport (httpx, the client's lean transport,
    WebSockets), so CA, client certificates and insecure-skip-verify mean
    the same everywhere.
    """
    if not config.server.startswith("https://"):
        return None
    try:
        if config.insecure_skip_tls_verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=config.ca_file)
        if config.client_cert_file:
            ctx.load_cert_chain(config.client_cert_file, config.client_key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load TLS files for {config.server}: {e}") from e
    return ctx
