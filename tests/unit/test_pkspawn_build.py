"""The runtime's C spawn helper is built once per source version, never half-built, or not at all with a reason."""
from __future__ import annotations

import os
import shutil

import pytest

from kubelet.runtime import pkspawn


def test_builds_once_and_reuses_the_binary(tmp_path):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.fail("tests need a C compiler (tests/run.sh installs gcc)")
    path, why = pkspawn.ensure(str(tmp_path / "bin"))
    assert why == "" and path == pkspawn.binary_path(str(tmp_path / "bin"))
    assert os.access(path, os.X_OK)
    mtime = os.stat(path).st_mtime_ns
    again, _ = pkspawn.ensure(str(tmp_path / "bin"), compiler="/no/such/cc")   # cached: no compiler needed
    assert again == path and os.stat(path).st_mtime_ns == mtime
    assert os.listdir(tmp_path / "bin") == [os.path.basename(path)]            # no temporary file left


def test_a_failing_or_missing_compiler_is_a_reason_not_a_crash(tmp_path):
    path, why = pkspawn.ensure(str(tmp_path / "a"), compiler="/no/such/cc")
    assert path is None and "/no/such/cc failed" in why
    path, why = pkspawn.ensure(str(tmp_path / "b"), compiler=shutil.which("false") or "/bin/false")
    assert path is None and "failed" in why
    assert not os.path.exists(tmp_path / "b") or os.listdir(tmp_path / "b") == []


def test_no_compiler_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(pkspawn.shutil, "which", lambda name: None)
    assert pkspawn.ensure(str(tmp_path)) == (None, "no C compiler (install gcc)")


def test_the_binary_name_follows_the_source(tmp_path, monkeypatch):
    src = tmp_path / "pkspawn.c"
    src.write_text("int main(void) { return 0; }\n")
    monkeypatch.setattr(pkspawn, "SOURCE", str(src))
    first = pkspawn.binary_path(str(tmp_path))
    src.write_text("int main(void) { return 1; }\n")
    assert pkspawn.binary_path(str(tmp_path)) != first


def _has_interpreter(path: str) -> bool:
    """Whether the ELF file asks for a dynamic loader (a PT_INTERP program header)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2                     # ELF64
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def test_static_when_the_c_library_allows_it_dynamic_otherwise(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("tests need a C compiler (tests/run.sh installs gcc)")
    path, why = pkspawn.ensure(str(tmp_path / "static"))
    assert why == ""
    has_libc_a = any(os.path.exists(os.path.join(d, "libc.a")) for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                                                                          "/usr/lib"))
    assert _has_interpreter(path) is not has_libc_a
    # a toolchain without a static C library: the build falls back to a dynamic binary
    fake = tmp_path / "cc-no-static"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -static ] && {{ echo "cannot find -lc" >&2; exit 1; }}; done\n'
                    f'exec {cc} "$@"\n')
    fake.chmod(0o755)
    path, why = pkspawn.ensure(str(tmp_path / "dynamic"), compiler=str(fake))
    assert why == "" and _has_interpreter(path)
    assert os.listdir(tmp_path / "dynamic") == [os.path.basename(path)]
