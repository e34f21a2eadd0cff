"""`pocketkube image`: the node's image store from the command line (import, list, remove).

The store lives in the kubelet's root directory (``ROOT/runtime/images``),
which the runtime reads when it creates a container; importing needs no
running runtime or kubelet.
"""
from __future__ import annotations

import argparse
import os
import sys

from kubelet.runtime.images import ImageError, ImageStore


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube image", description="Manage the node's local image store.")
    p.add_argument("--root-dir", default="/var/lib/pocketkube/kubelet", help="the kubelet's --root-dir")
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import", help="import a `docker save` or OCI-layout tarball")
    imp.add_argument("file")
    imp.add_argument("--name", default=None, help="image name (default: the tags in the archive)")
    sub.add_parser("list", help="list images")
    rm = sub.add_parser("rm", help="remove an image")
    rm.add_argument("name")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    store = ImageStore(os.path.join(args.root_dir, "runtime", "images"))
    if args.cmd == "import":
        try:
            for img in store.import_tarball(args.file, args.name):
                print(f"imported {img.name}")
        except (ImageError, OSError) as e:
            print(f"pocketkube image: error: {e}", file=sys.stderr)
            sys.exit(1)
    elif args.cmd == "list":
        print(f"{'IMAGE':<40} ROOTFS")
        for img in store.list():
            print(f"{img.name:<40} {img.rootfs or '(host filesystem)'}")
    elif args.cmd == "rm":
        if not store.remove(args.name):
            print(f"pocketkube image: error: image {args.name!r} not found", file=sys.stderr)
            sys.exit(1)
        print(f"removed {args.name}")


if __name__ == "__main__":
    main()
