"""The node's local image store: image name -> root filesystem + image config.

There is no registry client: images are imported from a tarball (``docker
save`` output, or an OCI image layout tar) with ``pocketkube image import``,
which unpacks the layers in order (honouring ``.wh.`` whiteouts) into
``<root>/<id>/rootfs`` and keeps the image config's Entrypoint, Cmd, Env and
WorkingDir beside it. The built-in image ``pocketkube/host`` has no rootfs:
its containers see the host's filesystem (in their own mount namespace),
with no Entrypoint/Cmd of its own, so tests and demos need no image at all.

An image that is neither built in nor imported is not an error of the
runtime but a pod status: the kubelet reports ``ErrImagePull`` with the
name, as a real kubelet does when a pull fails.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field

HOST_IMAGE = "pocketkube/host"


class ImageError(Exception):
    pass


@dataclass
class Image:
    name: str
    rootfs: str | None            # None: the host filesystem
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "rootfs": self.rootfs, "entrypoint": self.entrypoint, "cmd": self.cmd,
                "env": self.env, "workingDir": self.working_dir}


def normalize(name: str) -> str:
    """``busybox`` == ``busybox:latest`` == ``docker.io/library/busybox:latest``."""
    n = name.strip()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if n.startswith(prefix):
            n = n[len(prefix):]
            break
    if "@" not in n and ":" not in n.rsplit("/", 1)[-1]:
        n += ":latest"
    return n


def _safe_id(name: str) -> str:
    return hashlib.sha256(normalize(name).encode()).hexdigest()[:16]


class ImageStore:
    def __init__(self, root: str):
        self.root = root

    def resolve(self, name: str) -> Image | None:
        if normalize(name) == normalize(HOST_IMAGE):
            return Image(name=HOST_IMAGE, rootfs=None)
        meta = os.path.join(self.root, _safe_id(name), "image.json")
        try:
            with open(meta) as f:
                d = json.load(f)
        except (OSError, ValueError):
            return None
        return Image(name=d["name"], rootfs=d["rootfs"], entrypoint=d.get("entrypoint") or [],
                     cmd=d.get("cmd") or [], env=d.get("env") or [], working_dir=d.get("workingDir") or "")

    def list(self) -> list[Image]:
        out = [Image(name=HOST_IMAGE, rootfs=None)]
        try:
            ids = sorted(os.listdir(self.root))
        except OSError:
            ids = []
        for i in ids:
            try:
                with open(os.path.join(self.root, i, "image.json")) as f:
                    out.append(self.resolve(json.load(f)["name"]))
            except (OSError, ValueError, KeyError):
                continue
        return [i for i in out if i is not None]

    def remove(self, name: str) -> bool:
        d = os.path.join(self.root, _safe_id(name))
        if not os.path.isdir(d):
            return False
        shutil.rmtree(d)
        return True

    # ------------------------------------------------------------- import
    def import_tarball(self, path: str, name: str | None = None) -> list[Image]:
        """Import every image in a ``docker save`` or OCI-layout tarball; returns what was imported."""
        try:
            tf = tarfile.open(path)
        except (OSError, tarfile.TarError) as e:
            raise ImageError(f"{path}: not a readable tar archive ({e})") from e
        with tf:
            names = set(tf.getnames())
            if "manifest.json" in names:
                entries = self._docker_entries(tf)
            elif "index.json" in names:
                entries = self._oci_entries(tf)
            else:
                raise ImageError(f"{path}: neither a `docker save` archive (manifest.json) "
                                 "nor an OCI image layout (index.json)")
            out = []
            for tags, config, layers in entries:
                tags = [name] if name else tags
                if not tags:
                    raise ImageError(f"{path}: the image has no name; give one with --name")
                for tag in tags:
                    out.append(self._unpack(tf, normalize(tag), config, layers))
            return out

    @staticmethod
    def _json_member(tf: tarfile.TarFile, member: str) -> dict | list:
        f = tf.extractfile(member)
        if f is None:
            raise ImageError(f"{member} missing from the archive")
        return json.loads(f.read())

    def _docker_entries(self, tf: tarfile.TarFile):
        out = []
        for m in self._json_member(tf, "manifest.json"):
            out.append((m.get("RepoTags") or [], self._json_member(tf, m["Config"]), list(m["Layers"])))
        return out

    def _oci_entries(self, tf: tarfile.TarFile):
        def blob(digest: str) -> str:
            algo, _, hexd = digest.partition(":")
            return f"blobs/{algo}/{hexd}"

        out = []
        for desc in self._json_member(tf, "index.json").get("manifests", []):
            manifest = self._json_member(tf, blob(desc["digest"]))
            if "manifests" in manifest:  # a nested index: take the first linux/amd64-ish manifest
                manifest = self._json_member(tf, blob(manifest["manifests"][0]["digest"]))
            tag = (desc.get("annotations") or {}).get("io.containerd.image.name") or \
                (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            config = self._json_member(tf, blob(manifest["config"]["digest"]))
            out.append(([tag] if tag else [], config, [blob(layer["digest"]) for layer in manifest["layers"]]))
        return out

    def _unpack(self, tf: tarfile.TarFile, name: str, config: dict, layers: list[str]) -> Image:
        os.makedirs(self.root, exist_ok=True)
        final = os.path.join(self.root, _safe_id(name))
        work = tempfile.mkdtemp(prefix=".import-", dir=self.root)
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(rootfs)
        try:
            for layer in layers:
                f = tf.extractfile(layer)
                if f is None:
                    raise ImageError(f"layer {layer} missing from the archive")
                data = f.read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                _apply_layer(rootfs, data)
            cfg = config.get("config") or config.get("Config") or {}
            img = Image(name=name, rootfs=os.path.join(final, "rootfs"), entrypoint=cfg.get("Entrypoint") or [],
                        cmd=cfg.get("Cmd") or [], env=cfg.get("Env") or [], working_dir=cfg.get("WorkingDir") or "")
            with open(os.path.join(work, "image.json"), "w") as out:
                json.dump(img.to_dict(), out)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.rename(work, final)
            return img
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise


def _apply_layer(rootfs: str, data: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        members = []
        for m in layer.getmembers():
            base = os.path.basename(m.name)
            parent = os.path.dirname(m.name)
            if base == ".wh..wh..opq":
                d = os.path.join(rootfs, parent)
                if os.path.isdir(d):
                    for child in os.listdir(d):
                        _remove(os.path.join(d, child))
                continue
            if base.startswith(".wh."):
                _remove(os.path.join(rootfs, parent, base[4:]))
                continue
            if m.isdev():
                continue  # device nodes come from the runtime's /dev, not the image
            target = os.path.join(rootfs, m.name)
            if os.path.lexists(target) and not (m.isdir() and os.path.isdir(target)):
                _remove(target)
            members.append(m)
        layer.extractall(rootfs, members=members, filter="tar") if hasattr(tarfile, "data_filter") else \
            layer.extractall(rootfs, members=members)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
