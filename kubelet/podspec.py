"""What a pod spec means on the node: environment, files, limits, network mode, restart rules.

Pure functions of the pod (and the services it can see), so they are
unit-tested without a node. The kubelet's sync loop calls them; the runtime
only ever sees their results (argv, env list, file paths, byte counts).

* Environment: ``env`` with ``value`` or ``valueFrom.fieldRef``, ``$(VAR)``
  references expanded the Kubernetes way (in env values, command and args;
  ``$$`` escapes), plus the service variables Kubernetes adds for every
  service with a cluster IP in the pod's namespace and for ``kubernetes`` in
  ``default`` (``WEB_SERVICE_HOST``, ``WEB_SERVICE_PORT``, ``WEB_PORT`` ...).
* Files: per-pod ``/etc/hosts`` (localhost lines + the pod's IP and
  hostname), ``/etc/hostname``, and ``/etc/resolv.conf`` pointing at the
  cluster DNS with the search path ``<ns>.svc.<domain> svc.<domain> <domain>``
  and ``ndots:5`` (``dnsPolicy: Default`` keeps the node's file; host-network
  pods keep it unless ``ClusterFirstWithHostNet``).
"""
from __future__ import annotations

import re

from api.quantity import milli_value, parse_quantity

NETWORK_ANNOTATION = "pocketkube.io/network"


def network_mode(pod: dict) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return "host"
    if ((pod.get("metadata") or {}).get("annotations") or {}).get(NETWORK_ANNOTATION) == "none":
        return "none"
    return "pod"


def pod_hostname(pod: dict) -> str:
    spec = pod.get("spec") or {}
    return (spec.get("hostname") or pod["metadata"]["name"])[:63]


# ---------------------------------------------------------------- environment
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names replaced, unknown left as they are, $$ -> $."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _REF.sub(sub, text)


class EnvError(Exception):
    pass


_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: dict, path: str, node_name: str, pod_ip: str, host_ip: str) -> str:
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    m = _FIELD_LABEL.match(path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    raise EnvError(f'unsupported fieldRef fieldPath "{path}"')


def service_env(services: list[dict], namespace: str | None) -> dict[str, str]:
    """The docker-links style variables Kubernetes injects for services with a cluster IP.

    Services of ``namespace`` plus ``default/kubernetes``; ``namespace=None``
    gives only the latter (what ``enableServiceLinks: false`` keeps).
    """
    out: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        md, spec = svc["metadata"], svc.get("spec") or {}
        master = md.get("namespace") == "default" and md["name"] == "kubernetes"
        if not master and (namespace is None or md.get("namespace") != namespace):
            continue
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        name = md["name"].upper().replace("-", "_")
        ports = spec["ports"]
        out[f"{name}_SERVICE_HOST"] = ip
        out[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                out[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        out[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            pre = f"{name}_PORT_{p['port']}_{proto}"
            out[pre] = f"{proto.lower()}://{ip}:{p['port']}"
            out[pre + "_PROTO"] = proto.lower()
            out[pre + "_PORT"] = str(p["port"])
            out[pre + "_ADDR"] = ip
    return out


def container_env(pod: dict, container: dict, *, services: list[dict], node_name: str, pod_ip: str,
                  host_ip: str) -> dict[str, str]:
    spec = pod.get("spec") or {}
    env: dict[str, str] = {"HOSTNAME": pod_hostname(pod)}
    links = spec.get("enableServiceLinks", True) is not False
    env.update(service_env(services, pod["metadata"].get("namespace", "default") if links else None))
    for item in container.get("env") or []:
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            env[name] = expand(str(item.get("value") or ""), env)
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            env[name] = field_value(pod, item["valueFrom"]["fieldRef"].get("fieldPath", ""), node_name, pod_ip,
                                    host_ip)
        elif item.get("valueFrom"):
            kind = next(iter(item["valueFrom"]))
            raise EnvError(f"env {name}: valueFrom.{kind} is not supported by this kubelet")
        else:
            env[name] = ""
    return env


def command_and_args(container: dict, env: dict[str, str]) -> tuple[list[str] | None, list[str] | None]:
    cmd = container.get("command")
    args = container.get("args")
    return ([expand(c, env) for c in cmd] if cmd else None,
            [expand(a, env) for a in args] if args is not None else None)


# ---------------------------------------------------------------------- files
def hosts_file(pod: dict, pod_ip: str, cluster_domain: str) -> str:
    lines = ["# Kubernetes-managed hosts file (pocketkube).",
             "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    spec = pod.get("spec") or {}
    if pod_ip:
        host = pod_hostname(pod)
        ns = pod["metadata"].get("namespace", "default")
        if spec.get("subdomain"):
            lines.append(f"{pod_ip}\t{host}.{spec['subdomain']}.{ns}.svc.{cluster_domain}\t{host}")
        else:
            lines.append(f"{pod_ip}\t{host}")
    for alias in spec.get("hostAliases") or []:
        if alias.get("ip") and alias.get("hostnames"):
            lines.append(f"{alias['ip']}\t" + "\t".join(alias["hostnames"]))
    return "\n".join(lines) + "\n"


def resolv_conf(pod: dict, cluster_dns: str, cluster_domain: str, node_resolv: str = "") -> str | None:
    """The pod's resolv.conf, or None to keep the node's (dnsPolicy Default, or host network)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "Default" or (spec.get("hostNetwork") and policy != "ClusterFirstWithHostNet"):
        return None
    ns = pod["metadata"].get("namespace", "default")
    if policy == "None":
        servers, searches, options = [], [], []
    else:
        servers = [cluster_dns] if cluster_dns else []
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = ["ndots:5"]
    cfg = spec.get("dnsConfig") or {}
    servers += cfg.get("nameservers") or []
    searches += [s for s in cfg.get("searches") or [] if s not in searches]
    for opt in cfg.get("options") or []:
        if opt.get("name"):
            text = opt["name"] + (f":{opt['value']}" if opt.get("value") else "")
            options = [o for o in options if o.split(":")[0] != opt["name"]] + [text]
    out = [f"nameserver {s}" for s in servers[:3]]
    if searches:
        out.append("search " + " ".join(searches[:32]))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------- limits
def limits(container: dict) -> tuple[int | None, int | None]:
    """(memory bytes, cpu millicores) from resources.limits, None where unset."""
    lim = ((container.get("resources") or {}).get("limits")) or {}
    mem = cpu = None
    if lim.get("memory") is not None:
        mem = int(parse_quantity(str(lim["memory"])))
    if lim.get("cpu") is not None:
        cpu = milli_value(str(lim["cpu"]))
    return mem, cpu


# -------------------------------------------------------------------- restart
def should_restart(policy: str, exit_code: int | None) -> bool:
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


def backoff_delay(restarts: int, initial: float = 10.0, cap: float = 300.0) -> float:
    """Seconds to wait before restart number ``restarts`` (1-based): 10, 20, 40, ... capped at 5 min."""
    if restarts <= 0:
        return 0.0
    return min(cap, initial * (2 ** (restarts - 1)))
