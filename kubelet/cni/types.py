"""The CNI spec's data shapes: results, errors and network configuration lists.

Everything that crosses the runtime/plugin boundary is JSON with field names
fixed by the CNI spec (1.0, with the 0.3/0.4 result shape still accepted,
since the reference plugins answer in the version the config asks for).
These types are the one place that knows those names, so the runtime side
(``invoke``) and our plugin (``plugin``) exchange exactly the same bytes
whether the plugin runs as an executable or in-process.

``CNIError`` is also the single exception type of the package: a plugin's
error JSON becomes one, and failures on the runtime side (no config, plugin
missing, timed out, crashed) are raised as one too, with codes from a range
the spec leaves to implementations (9xx) so callers can tell them apart from
the well-known plugin codes (1-11) without string matching.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]

# Well-known error codes of the spec (section "Error").
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
# Raised by the runtime side itself, never sent by a plugin.
ERR_NO_CONFIG = 901
ERR_PLUGIN_NOT_FOUND = 902
ERR_PLUGIN_TIMEOUT = 903
ERR_PLUGIN_FAILED = 904
ERR_NO_CACHED_RESULT = 905


class CNIError(Exception):
    """A CNI error: ``code`` (int), ``msg`` (short), ``details`` (longer, may be empty)."""

    def __init__(self, code: int, msg: str, details: str = "", cni_version: str = SPEC_VERSION):
        self.code = int(code)
        self.msg = msg
        self.details = details
        self.cni_version = cni_version
        super().__init__(str(self))

    def __reduce__(self):  # picklable (e.g. across a process pool) despite the custom __init__
        return (type(self), (self.code, self.msg, self.details, self.cni_version))

    def __str__(self) -> str:
        text = self.msg
        if self.details:
            text += f": {self.details}"
        return f"{text} (CNI error {self.code})"

    def __repr__(self) -> str:
        return f"CNIError(code={self.code!r}, msg={self.msg!r}, details={self.details!r})"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cniVersion": self.cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            d["details"] = self.details
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CNIError":
        if not isinstance(d, dict) or not isinstance(d.get("code"), int) or "msg" not in d:
            raise ValueError("not a CNI error object (needs integer 'code' and 'msg')")
        return cls(d["code"], str(d["msg"]), str(d.get("details") or ""), str(d.get("cniVersion") or SPEC_VERSION))

    @classmethod
    def from_json(cls, data: str | bytes) -> "CNIError":
        """Parse an error JSON; ``ValueError`` if ``data`` is not one."""
        try:
            d = json.loads(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"not JSON: {e}") from None
        return cls.from_dict(d)


def _strip_prefix(address: str) -> str:
    return address.split("/", 1)[0]


@dataclass
class CNIResult:
    """An ADD result. Attributes are snake_case; ``to_dict``/``from_dict`` use the spec's names.

    ``interfaces``: ``[{"name", "mac", "sandbox"?}]`` (sandbox = netns path, only for
    interfaces inside the container); ``ips``: ``[{"address": "10.244.1.5/24",
    "gateway"?, "interface"? (index into interfaces)}]``; ``routes``:
    ``[{"dst", "gw"?}]``; ``dns``: ``{"nameservers", "domain", "search", "options"}``.
    """

    cni_version: str = SPEC_VERSION
    interfaces: list[dict[str, Any]] = field(default_factory=list)
    ips: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    dns: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CNIResult":
        if not isinstance(d, dict):
            raise ValueError("a CNI result must be a JSON object")
        version = str(d.get("cniVersion") or SPEC_VERSION)
        if "ip4" in d or "ip6" in d:  # 0.1/0.2 shape: {"ip4": {"ip", "gateway", "routes"}}
            ips, routes = [], []
            for key in ("ip4", "ip6"):
                part = d.get(key) or {}
                if part.get("ip"):
                    ip = {"address": part["ip"]}
                    if part.get("gateway"):
                        ip["gateway"] = part["gateway"]
                    ips.append(ip)
                routes += list(part.get("routes") or [])
            return cls(version, [], ips, routes, dict(d.get("dns") or {}))
        ips = []
        for ip in d.get("ips") or []:
            if not isinstance(ip, dict) or "address" not in ip:
                raise ValueError(f"result ip entry without an address: {ip!r}")
            ip = {k: v for k, v in ip.items() if k != "version"}  # 0.3/0.4 only
            ips.append(ip)
        return cls(version, [dict(i) for i in d.get("interfaces") or []], ips,
                   [dict(r) for r in d.get("routes") or []], dict(d.get("dns") or {}))

    @classmethod
    def from_json(cls, data: str | bytes) -> "CNIResult":
        return cls.from_dict(json.loads(data))

    def to_dict(self) -> dict[str, Any]:
        old = self.cni_version.startswith("0.")
        ips = []
        for ip in self.ips:
            ip = dict(ip)
            if old:  # 0.3.x/0.4.0 results carry the IP version
                ip["version"] = "6" if ":" in _strip_prefix(ip["address"]) else "4"
            ips.append(ip)
        d: dict[str, Any] = {"cniVersion": self.cni_version, "interfaces": [dict(i) for i in self.interfaces],
                             "ips": ips}
        if self.routes:
            d["routes"] = [dict(r) for r in self.routes]
        d["dns"] = dict(self.dns)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def pod_ip(self) -> str | None:
        """The first IPv4 address, without its prefix length (what goes into ``status.podIP``)."""
        for ip in self.ips:
            addr = _strip_prefix(ip["address"])
            try:
                if ipaddress.ip_address(addr).version == 4:
                    return addr
            except ValueError:
                continue
        return None

    def pod_ips(self) -> list[str]:
        """Every address without prefix, IPv4 first (``status.podIPs``)."""
        addrs = [_strip_prefix(ip["address"]) for ip in self.ips]
        return sorted(addrs, key=lambda a: ":" in a)


@dataclass
class NetworkConfigList:
    """A network: ``name``, ``cni_version`` and the ordered ``plugins`` (dicts, each with a ``type``).

    ``source`` is the file it came from (for messages), ``disable_check`` the
    conflist's ``disableCheck``.
    """

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins}
        if self.disable_check:
            d["disableCheck"] = True
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "<config>") -> "NetworkConfigList":
        """A conflist object, or a single plugin config (``.conf``: has ``type``, no ``plugins``)."""
        def bad(why: str) -> CNIError:
            return CNIError(ERR_INVALID_CONFIG, f"invalid network configuration {source}", why)

        if not isinstance(d, dict):
            raise bad("the top level must be a JSON object")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise bad("missing network 'name'")
        version = d.get("cniVersion")
        if not isinstance(version, str) or not version:
            raise bad("missing 'cniVersion'")
        if "plugins" in d:
            plugins = d["plugins"]
            if not isinstance(plugins, list) or not plugins:
                raise bad("'plugins' must be a non-empty list")
        elif "type" in d:
            # A single .conf: the whole object is the one plugin's config, as libcni does.
            plugins = [{k: v for k, v in d.items() if k not in ("name", "cniVersion")}]
        else:
            raise bad("neither 'plugins' (a .conflist) nor 'type' (a .conf)")
        for i, p in enumerate(plugins):
            if not isinstance(p, dict):
                raise bad(f"plugins[{i}] is not an object")
            if not isinstance(p.get("type"), str) or not p["type"]:
                raise bad(f"plugins[{i}] has no 'type'")
            if "/" in p["type"] or p["type"] in (".", ".."):
                raise bad(f"plugins[{i}] type {p['type']!r} must be a plain executable name")
        return cls(name, version, [dict(p) for p in plugins], bool(d.get("disableCheck", False)), source)

    @classmethod
    def from_bytes(cls, data: bytes | str, source: str = "<config>") -> "NetworkConfigList":
        try:
            d = json.loads(data)
        except ValueError as e:
            raise CNIError(ERR_INVALID_CONFIG, f"invalid network configuration {source}", f"not JSON: {e}") from None
        return cls.from_dict(d, source)

    @classmethod
    def from_file(cls, path: str) -> "NetworkConfigList":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CNIError(ERR_INVALID_CONFIG, f"cannot read network configuration {path}", str(e)) from None
        netconf = cls.from_bytes(data, path)
        if path.endswith(".conflist") and b'"plugins"' not in data:
            raise CNIError(ERR_INVALID_CONFIG, f"invalid network configuration {path}",
                           "a .conflist needs a 'plugins' list")
        return netconf


def validate_container_id(container_id: str) -> None:
    """The spec: alphanumerics plus ``_ . -``, starting with an alphanumeric; never empty."""
    ok = bool(container_id) and container_id[0].isalnum() and all(
        c.isascii() and (c.isalnum() or c in "_.-") for c in container_id)
    if not ok:
        raise CNIError(ERR_INVALID_ENV, "invalid container id",
                       f"{container_id!r}: use letters, digits, '_', '.', '-', starting with a letter or digit")


def result_cache_name(network: str, container_id: str, ifname: str) -> str:
    """File name of a cached result, as libcni names them in /var/lib/cni/results."""
    return f"{network}-{container_id}-{ifname}"


__all__ = ["CNIError", "CNIResult", "NetworkConfigList", "SPEC_VERSION", "SUPPORTED_VERSIONS",
           "validate_container_id", "result_cache_name", "ERR_INCOMPATIBLE_VERSION", "ERR_UNSUPPORTED_FIELD",
           "ERR_UNKNOWN_CONTAINER", "ERR_INVALID_ENV", "ERR_IO", "ERR_DECODE", "ERR_INVALID_CONFIG", "ERR_TRY_AGAIN",
           "ERR_NO_CONFIG", "ERR_PLUGIN_NOT_FOUND", "ERR_PLUGIN_TIMEOUT", "ERR_PLUGIN_FAILED", "ERR_NO_CACHED_RESULT"]
