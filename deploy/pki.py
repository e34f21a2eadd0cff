"""The cluster's small PKI: a CA and the API server's serving certificate (DIR/pki/).

Why TLS at all on a one-machine cluster: kubectl (client-go) sends the
kubeconfig's bearer token only to an ``https://`` server, and without a
token the API server would be open to every local user, while a pod with
the ``pocketkube/host`` image runs commands as root on this machine. So the
API server serves TLS with a certificate from a CA made here, and every
kubeconfig names that CA.

Made with the ``openssl`` command (P-256 keys, fast to generate), through
the ``System`` seam. The serving certificate covers 127.0.0.1, the host end
of the node link, the ``kubernetes`` service IP (first of the service range)
and the ``kubernetes.default.svc...`` names; when those change (another
``--node-network``) it is re-issued from the same CA, so kubeconfigs stay
valid. Keys are mode 0600.
"""
from __future__ import annotations

import ipaddress
import os

from deploy.state import Settings
from deploy.system import System

DAYS = "3650"


def paths(s: Settings) -> dict[str, str]:
    d = s.layout.path("pki")
    return {"dir": d, "ca_key": os.path.join(d, "ca.key"), "ca_crt": os.path.join(d, "ca.crt"),
            "key": os.path.join(d, "apiserver.key"), "crt": os.path.join(d, "apiserver.crt"),
            "csr": os.path.join(d, "apiserver.csr"), "ext": os.path.join(d, "apiserver.ext"),
            "sans": os.path.join(d, "apiserver.sans")}


def subject_alt_names(s: Settings) -> str:
    svc_ip = ipaddress.ip_network(s.service_cidr).network_address + 1
    names = ["IP:127.0.0.1", f"IP:{s.host_ip}", f"IP:{svc_ip}", "DNS:localhost", "DNS:kubernetes",
             "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local"]
    return ",".join(names)


def _genkey(sys_: System, path: str) -> None:
    sys_.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path])
    os.chmod(path, 0o600)


def ensure_pki(sys_: System, s: Settings) -> dict[str, str]:
    p = paths(s)
    os.makedirs(p["dir"], mode=0o700, exist_ok=True)
    new_ca = False
    if not (os.path.exists(p["ca_key"]) and os.path.exists(p["ca_crt"])):
        _genkey(sys_, p["ca_key"])
        sys_.run(["openssl", "req", "-x509", "-new", "-key", p["ca_key"], "-sha256", "-days", DAYS,
                  "-subj", f"/CN=pocketkube-ca-{s.id}",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                  "-addext", "subjectKeyIdentifier=hash",
                  "-out", p["ca_crt"]])
        new_ca = True
    sans = subject_alt_names(s)
    try:
        with open(p["sans"]) as f:
            have = f.read().strip()
    except OSError:
        have = ""
    if new_ca or have != sans or not os.path.exists(p["crt"]) or not os.path.exists(p["key"]):
        _genkey(sys_, p["key"])
        with open(p["ext"], "w") as f:
            f.write(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        sys_.run(["openssl", "req", "-new", "-key", p["key"], "-subj", "/CN=pocketkube-apiserver", "-out", p["csr"]])
        sys_.run(["openssl", "x509", "-req", "-in", p["csr"], "-CA", p["ca_crt"], "-CAkey", p["ca_key"],
                  "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", p["ext"], "-out", p["crt"]])
        with open(p["sans"], "w") as f:
            f.write(sans + "\n")
    return p
