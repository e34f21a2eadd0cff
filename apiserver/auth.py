"""Bearer-token authentication from a kube-apiserver style token file.

The file has one line per token: ``token,user,uid[,"group1,group2"]``, the
format `--token-auth-file` takes in Kubernetes, so existing files and habits
carry over. With a token file every request except the public health and
version endpoints needs a valid token; without one the server is open (it
binds loopback and the node link only, see docs/design.md).
"""
from __future__ import annotations

import csv
import hmac
from dataclasses import dataclass

from . import errors


@dataclass(frozen=True)
class User:
    name: str
    uid: str
    groups: tuple[str, ...]


class TokenFileError(ValueError):
    pass


class TokenAuthenticator:
    def __init__(self, tokens: dict[str, User]):
        self.tokens = tokens

    @classmethod
    def from_file(cls, path: str) -> "TokenAuthenticator":
        tokens: dict[str, User] = {}
        try:
            with open(path, newline="") as f:
                for lineno, row in enumerate(csv.reader(f), 1):
                    if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                        continue
                    if len(row) < 3:
                        raise TokenFileError(f"{path}:{lineno}: expected token,user,uid[,groups]")
                    groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
                    tokens[row[0].strip()] = User(row[1].strip(), row[2].strip(), groups)
        except OSError as e:
            raise TokenFileError(f"cannot read token file {path}: {e.strerror}")
        if not tokens:
            raise TokenFileError(f"token file {path} has no tokens")
        return cls(tokens)

    def authenticate(self, header: str | None) -> User:
        if not header or not header.lower().startswith("bearer "):
            raise errors.unauthorized()
        token = header[7:].strip()
        for known, user in self.tokens.items():
            if hmac.compare_digest(known, token):
                return user
        raise errors.unauthorized()
