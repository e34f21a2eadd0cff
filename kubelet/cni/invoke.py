"""The runtime side of CNI: how the kubelet asks plugins to plug a pod in, and unplug it.

This is libcni's job in Go runtimes, done the same way so that any CNI 1.0
plugin works behind it (ours, or the reference ``bridge``/``host-local``/
``loopback``/``portmap``):

* ``load()`` takes the first ``*.conflist``/``*.conf``/``*.json`` of the
  config directory in lexical order (a single ``.conf`` is a one-plugin list);
* ``add`` runs the chain in order, each plugin with ``CNI_COMMAND=ADD`` and the
  other ``CNI_*`` variables, its own config on stdin with the network's
  ``name`` and ``cniVersion`` injected, the previous plugin's result as
  ``prevResult``, and ``runtimeConfig`` holding the runtime's values for the
  capabilities the plugin declares (``portMappings``...). The last result is
  the network's result. If any plugin fails, the chain is DELeted (rollback)
  and the error raised;
* the result is cached per (network, container id, ifname) under
  ``<cache_dir>/results/`` (libcni's ``/var/lib/cni/results``), so DEL and
  CHECK get ``prevResult`` and a restarted kubelet can still tear down what
  its previous life set up (``cached()`` lists what is cached);
* ``delete`` runs the chain in reverse with ``DEL``; it is idempotent, works
  when the namespace is gone (plugins are told the path anyway, as the spec
  allows), falls back to the cached config if the config directory changed,
  and removes the cache entry only once every plugin succeeded;
* ``check`` runs ``CHECK`` with the cached result; ``version`` asks a plugin
  which spec versions it speaks.

A plugin is an executable named by ``type`` in one of the bin dirs, run with
a timeout; a non-zero exit becomes the ``CNIError`` its stdout carries (or
one describing the exit status and stderr). Our own ``pocketkube-bridge``
runs in-process by default (``in_process=True``): the same env dict and
stdin bytes go to ``kubelet.cni.plugin.main``, which saves a Python start-up
per pod. Calls for one container are serialised; different containers run
in parallel from the kubelet's worker threads.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from kubelet.cni.types import (ERR_INVALID_CONFIG, ERR_INVALID_ENV, ERR_IO, ERR_NO_CACHED_RESULT, ERR_NO_CONFIG,
                               ERR_PLUGIN_FAILED, ERR_PLUGIN_NOT_FOUND, ERR_PLUGIN_TIMEOUT, SPEC_VERSION, CNIError,
                               CNIResult, NetworkConfigList, result_cache_name, validate_container_id)

log = logging.getLogger(__name__)

CONFIG_EXTENSIONS = (".conflist", ".conf", ".json")
OUR_PLUGIN = "pocketkube-bridge"
DEFAULT_CONFLIST = "10-pocketkube.conflist"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PluginMain = Callable[[Mapping[str, str], bytes], "tuple[int, bytes]"]


def _our_plugin_main(env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes]:
    from kubelet.cni import plugin  # pyroute2 is imported only when a pod is actually plugged in

    return plugin.main(env, stdin)


@dataclass
class CachedAttachment:
    """One cache entry: what an ADD set up (for DEL after a restart, and for garbage collection)."""

    network: str
    container_id: str
    ifname: str
    netns: str
    result: CNIResult
    args: dict[str, str] | None
    runtime_config: dict[str, Any] | None
    config: NetworkConfigList | None


class CNI:
    """The kubelet's CNI client for one config directory (see the module docstring)."""

    def __init__(self, conf_dir: str, bin_dirs: list[str], cache_dir: str, *, in_process: bool = True,
                 timeout: float = 30.0, in_process_plugins: Mapping[str, PluginMain] | None = None):
        self.conf_dir = conf_dir
        self.bin_dirs = list(bin_dirs)
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.in_process = in_process
        self._in_process_plugins: dict[str, PluginMain] = (
            dict(in_process_plugins) if in_process_plugins is not None else {OUR_PLUGIN: _our_plugin_main})
        self._locks_mu = threading.Lock()
        self._locks: dict[tuple[str, str], list] = {}

    # ------------------------------------------------------------ config
    def load(self) -> NetworkConfigList:
        """The network: the first config file of ``conf_dir`` in lexical order."""
        try:
            names = sorted(n for n in os.listdir(self.conf_dir) if n.endswith(CONFIG_EXTENSIONS)
                           and os.path.isfile(os.path.join(self.conf_dir, n)))
        except FileNotFoundError:
            raise CNIError(ERR_NO_CONFIG, f"no CNI network config: directory {self.conf_dir} does not exist") from None
        except OSError as e:
            raise CNIError(ERR_NO_CONFIG, f"cannot read CNI config directory {self.conf_dir}", str(e)) from None
        if not names:
            raise CNIError(ERR_NO_CONFIG, f"no CNI network config in {self.conf_dir}",
                           f"expected a {', '.join('*' + e for e in CONFIG_EXTENSIONS)} file")
        path = os.path.join(self.conf_dir, names[0])
        return NetworkConfigList.from_file(path)

    # ------------------------------------------------------------ commands
    def add(self, container_id: str, netns_path: str, ifname: str = "eth0", args: dict[str, str] | None = None, *,
            runtime_config: dict[str, Any] | None = None) -> CNIResult:
        """Plug the container in; returns the chain's final result (also cached)."""
        validate_container_id(container_id)
        if not netns_path:
            raise CNIError(ERR_INVALID_ENV, "ADD needs a network namespace path")
        netconf = self.load()
        with self._lock(container_id, ifname):
            env = self._env("ADD", container_id, netns_path, ifname, args)
            prev: dict[str, Any] | None = None
            try:
                for plugin in netconf.plugins:
                    out = self._exec(plugin["type"], env, self._plugin_conf(netconf, plugin, prev, runtime_config))
                    prev = self._parse_result(plugin["type"], out)
                result = CNIResult.from_dict(prev or {})
                try:
                    self._cache_write(netconf, container_id, ifname, netns_path, result.to_dict(), args,
                                      runtime_config)
                except OSError as e:  # without the cache a restarted kubelet could not undo this: roll back
                    raise CNIError(ERR_IO, f"cannot cache the CNI result in {self._results_dir()}", str(e)) from None
            except CNIError as e:
                rollback = self._del_chain(netconf, dict(env, CNI_COMMAND="DEL"), prev, runtime_config)
                if rollback:
                    e.details = (e.details + "; " if e.details else "") + "rollback: " + "; ".join(rollback)
                log.warning("CNI ADD %s/%s on %s failed: %s", container_id, ifname, netconf.name, e)
                raise
            return result

    def delete(self, container_id: str, netns_path: str, ifname: str = "eth0", args: dict[str, str] | None = None,
               *, runtime_config: dict[str, Any] | None = None) -> None:
        """Unplug the container; idempotent, also when the namespace is gone or nothing was ever added."""
        validate_container_id(container_id)
        with self._lock(container_id, ifname):
            try:
                netconf = self.load()
            except CNIError:
                cached = self._cached_any(container_id, ifname)
                if cached is None or cached.config is None:
                    raise
                netconf = cached.config  # the config directory changed since ADD: undo what ADD did
            cached = self._cache_read(netconf.name, container_id, ifname)
            # DEL carries prevResult from 0.4.0 on, as in libcni.
            prev = cached.result.to_dict() if cached and _version_tuple(netconf.cni_version) >= (0, 4, 0) else None
            if cached:
                args = args if args is not None else cached.args
                runtime_config = runtime_config if runtime_config is not None else cached.runtime_config
            env = self._env("DEL", container_id, netns_path or "", ifname, args)
            self._del_chain(netconf, env, prev, runtime_config, raise_first=True)
            self._cache_remove(netconf.name, container_id, ifname)

    def check(self, container_id: str, netns_path: str, ifname: str = "eth0", args: dict[str, str] | None = None,
              *, runtime_config: dict[str, Any] | None = None) -> None:
        """Ask every plugin whether the container's network is still as ADD left it; CNIError if not."""
        validate_container_id(container_id)
        netconf = self.load()
        if netconf.disable_check:
            return
        if _version_tuple(netconf.cni_version) < (0, 4, 0):
            raise CNIError(ERR_INVALID_CONFIG, f"CHECK needs cniVersion 0.4.0 or later, {netconf.source} has "
                                               f"{netconf.cni_version}")
        with self._lock(container_id, ifname):
            cached = self._cache_read(netconf.name, container_id, ifname)
            if cached is None:
                raise CNIError(ERR_NO_CACHED_RESULT, f"no cached result for {container_id}/{ifname} in network "
                                                     f"{netconf.name}", f"looked in {self._results_dir()}")
            if runtime_config is None:
                runtime_config = cached.runtime_config
            env = self._env("CHECK", container_id, netns_path, ifname, args if args is not None else cached.args)
            prev = cached.result.to_dict()
            for plugin in netconf.plugins:
                self._exec(plugin["type"], env, self._plugin_conf(netconf, plugin, prev, runtime_config))

    def version(self, plugin_type: str) -> dict[str, Any]:
        """The plugin's VERSION answer: ``{"cniVersion", "supportedVersions"}``."""
        env = {"CNI_COMMAND": "VERSION", "CNI_PATH": os.pathsep.join(self.bin_dirs)}
        out = self._exec(plugin_type, env, json.dumps({"cniVersion": SPEC_VERSION}).encode())
        try:
            d = json.loads(out)
            if not isinstance(d.get("supportedVersions"), list):
                raise ValueError("no supportedVersions list")
        except (ValueError, AttributeError) as e:
            raise CNIError(ERR_PLUGIN_FAILED, f"plugin {plugin_type} gave an invalid VERSION answer",
                           f"{e}: {out[:200]!r}") from None
        return d

    def cached(self) -> list[CachedAttachment]:
        """Every cached attachment (e.g. for a restarted kubelet to DEL those of pods that are gone)."""
        out = []
        try:
            names = sorted(os.listdir(self._results_dir()))
        except FileNotFoundError:
            return []
        for name in names:
            entry = self._load_entry(os.path.join(self._results_dir(), name))
            if entry is not None:
                out.append(entry)
        return out

    def cached_result(self, container_id: str, ifname: str = "eth0") -> CNIResult | None:
        """The cached ADD result of the container in the current network, if any."""
        entry = self._cached_any(container_id, ifname)
        return entry.result if entry else None

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def _lock(self, container_id: str, ifname: str) -> Iterator[None]:
        """Serialise calls for one (container, ifname); others run in parallel. Entries go when unused."""
        key = (container_id, ifname)
        with self._locks_mu:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_mu:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def _env(self, command: str, container_id: str, netns: str, ifname: str,
             args: dict[str, str] | None) -> dict[str, str]:
        return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
                "CNI_ARGS": format_cni_args(args), "CNI_PATH": os.pathsep.join(self.bin_dirs)}

    @staticmethod
    def _plugin_conf(netconf: NetworkConfigList, plugin: dict[str, Any], prev: dict[str, Any] | None,
                     runtime_config: dict[str, Any] | None) -> bytes:
        conf = dict(plugin)
        conf["name"] = netconf.name
        conf["cniVersion"] = netconf.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        else:
            conf.pop("prevResult", None)
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in (runtime_config or {}).items() if isinstance(caps, dict) and caps.get(k)}
        if rc:
            conf["runtimeConfig"] = rc
        return json.dumps(conf).encode()

    @staticmethod
    def _parse_result(plugin_type: str, out: bytes) -> dict[str, Any]:
        try:
            d = json.loads(out)
            CNIResult.from_dict(d)
        except ValueError as e:
            raise CNIError(ERR_PLUGIN_FAILED, f"plugin {plugin_type} returned an invalid ADD result",
                           f"{e}: {out[:200]!r}") from None
        return d

    def _del_chain(self, netconf: NetworkConfigList, env: dict[str, str], prev: dict[str, Any] | None,
                   runtime_config: dict[str, Any] | None, raise_first: bool = False) -> list[str]:
        errors = []
        for plugin in reversed(netconf.plugins):
            try:
                self._exec(plugin["type"], env, self._plugin_conf(netconf, plugin, prev, runtime_config))
            except CNIError as e:
                if raise_first:
                    raise
                errors.append(f"{plugin['type']} DEL: {e}")
        return errors

    def find_plugin(self, plugin_type: str) -> str:
        """The executable for a plugin ``type``: the first match in the bin dirs."""
        for d in self.bin_dirs:
            path = os.path.join(d, plugin_type)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise CNIError(ERR_PLUGIN_NOT_FOUND, f'failed to find plugin "{plugin_type}"',
                       f"not an executable in any of {self.bin_dirs}")

    def _exec(self, plugin_type: str, env: dict[str, str], stdin: bytes) -> bytes:
        command = env.get("CNI_COMMAND", "")
        if self.in_process and plugin_type in self._in_process_plugins:
            code, out = self._in_process_plugins[plugin_type](dict(env), stdin)
            stderr = b""
        else:
            code, out, stderr = self._run(self.find_plugin(plugin_type), plugin_type, env, stdin)
        if code == 0:
            return out
        try:
            err = CNIError.from_json(out)
        except ValueError:
            tail = (stderr or out).decode(errors="replace").strip()[-2000:]
            raise CNIError(ERR_PLUGIN_FAILED, f"plugin {plugin_type} {command} failed with exit status {code}",
                           tail or "no output") from None
        raise err

    def _run(self, path: str, plugin_type: str, env: dict[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        full_env.update(env)
        try:
            proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=full_env, start_new_session=True, close_fds=True)
        except OSError as e:
            raise CNIError(ERR_PLUGIN_FAILED, f"cannot run plugin {plugin_type} ({path})", str(e)) from None
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the plugin and anything it started
            except ProcessLookupError:
                pass
            proc.communicate()
            raise CNIError(ERR_PLUGIN_TIMEOUT, f"plugin {plugin_type} {env.get('CNI_COMMAND')} timed out after "
                                               f"{self.timeout:g}s", path) from None
        return proc.returncode, out, err

    # ------------------------------------------------------------ cache
    def _results_dir(self) -> str:
        return os.path.join(self.cache_dir, "results")

    def _cache_path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self._results_dir(), result_cache_name(network, container_id, ifname))

    def _cache_write(self, netconf: NetworkConfigList, container_id: str, ifname: str, netns: str,
                     result: dict[str, Any], args: dict[str, str] | None,
                     runtime_config: dict[str, Any] | None) -> None:
        entry = {"kind": "cniCacheV1", "containerId": container_id, "ifName": ifname, "networkName": netconf.name,
                 "netns": netns, "cniArgs": args, "capabilityArgs": runtime_config,
                 "config": base64.b64encode(json.dumps(netconf.to_dict()).encode()).decode(), "result": result}
        os.makedirs(self._results_dir(), mode=0o700, exist_ok=True)
        # Not fsync-ed: the entry outlives kubelet restarts through the page cache, and a machine
        # crash takes the namespace it describes with it (an fsync cost ~4 ms of every pod's start).
        _atomic_write(self._cache_path(netconf.name, container_id, ifname), json.dumps(entry).encode(), 0o600,
                      durable=False)

    @staticmethod
    def _load_entry(path: str) -> CachedAttachment | None:
        try:
            with open(path, "rb") as f:
                d = json.load(f)
            config = None
            if d.get("config"):
                config = NetworkConfigList.from_bytes(base64.b64decode(d["config"]), f"cached config in {path}")
            return CachedAttachment(d["networkName"], d["containerId"], d["ifName"], d.get("netns") or "",
                                    CNIResult.from_dict(d["result"]), d.get("cniArgs"), d.get("capabilityArgs"),
                                    config)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, CNIError) as e:
            log.warning("ignoring unreadable CNI cache entry %s: %s", path, e)
            return None

    def _cache_read(self, network: str, container_id: str, ifname: str) -> CachedAttachment | None:
        return self._load_entry(self._cache_path(network, container_id, ifname))

    def _cached_any(self, container_id: str, ifname: str) -> CachedAttachment | None:
        try:
            return self._cache_read(self.load().name, container_id, ifname)
        except CNIError:
            pass
        for entry in self.cached():
            if entry.container_id == container_id and entry.ifname == ifname:
                return entry
        return None

    def _cache_remove(self, network: str, container_id: str, ifname: str) -> None:
        try:
            os.unlink(self._cache_path(network, container_id, ifname))
        except FileNotFoundError:
            pass


def format_cni_args(args: dict[str, str] | None) -> str:
    """``CNI_ARGS``: ``IgnoreUnknown=1;K8S_POD_NAMESPACE=...;...`` (empty without args)."""
    if not args:
        return ""
    items = dict(args)
    parts = [] if "IgnoreUnknown" in items else ["IgnoreUnknown=1"]
    for k, v in items.items():
        k, v = str(k), str(v)
        if not k or any(c in k for c in ";=") or ";" in v:
            raise CNIError(ERR_INVALID_ENV, f"invalid CNI_ARGS entry {k!r}={v!r}", "keys and values may not hold ';', "
                                                                                  "keys not '='")
        parts.append(f"{k}={v}")
    return ";".join(parts)


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def _atomic_write(path: str, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write-then-rename; ``durable`` adds an fsync before the rename (not for per-pod state, see _cache_write)."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------- set-up helpers
def default_conflist(pod_cidr: str, *, name: str = "pocketkube", bridge: str = "cni0",
                     data_dir: str | None = None, mtu: int | None = None) -> dict[str, Any]:
    """Our network config for a node: pocketkube-bridge with the node's pod CIDR, gateway = first address."""
    net = ipaddress.ip_network(pod_cidr)
    ipam: dict[str, Any] = {"type": "host-local", "subnet": str(net), "gateway": str(net.network_address + 1)}
    if data_dir:
        ipam["dataDir"] = data_dir
    plugin: dict[str, Any] = {"type": OUR_PLUGIN, "bridge": bridge, "isGateway": True, "hairpinMode": True,
                              "ipam": ipam}
    if mtu:
        plugin["mtu"] = mtu
    return {"cniVersion": SPEC_VERSION, "name": name, "plugins": [plugin]}


def write_default_conflist(conf_dir: str, pod_cidr: str, *, name: str = "pocketkube", bridge: str = "cni0",
                           data_dir: str | None = None, mtu: int | None = None) -> str:
    """Write ``<conf_dir>/10-pocketkube.conflist`` (atomically); returns its path."""
    os.makedirs(conf_dir, exist_ok=True)
    path = os.path.join(conf_dir, DEFAULT_CONFLIST)
    body = json.dumps(default_conflist(pod_cidr, name=name, bridge=bridge, data_dir=data_dir, mtu=mtu), indent=2)
    _atomic_write(path, body.encode() + b"\n")
    return path


def install_plugin(bin_dir: str) -> str:
    """Write the ``pocketkube-bridge`` executable (a shim running ``python -m kubelet.cni.plugin``) into bin_dir."""
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, OUR_PLUGIN)
    root = shlex.quote(PROJECT_ROOT)
    script = ("#!/bin/sh\n"
              "# pocketkube-bridge CNI plugin, written by kubelet.cni.invoke.install_plugin\n"
              f"PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}\n"
              "export PYTHONPATH\n"
              f"exec {shlex.quote(sys.executable)} -m kubelet.cni.plugin \"$@\"\n")
    _atomic_write(path, script.encode(), 0o755)
    return path


__all__ = ["CNI", "CachedAttachment", "format_cni_args", "write_default_conflist", "default_conflist",
           "install_plugin", "OUR_PLUGIN", "DEFAULT_CONFLIST"]
