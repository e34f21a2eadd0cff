"""Service account tokens as JSON Web Tokens: sign, verify, and the keys they need.

Kubernetes' service account tokens are JWS compact serializations (RFC 7515)
signed by the API server (TokenRequest) or the controller-manager (legacy
token Secrets) and verified by the API server against every key in
``--service-account-key-file``. pocketkube signs with RS256 (RSA PKCS#1 v1.5
over SHA-256), what kube-apiserver uses for RSA keys, and names the key in
the header's ``kid`` the way upstream does (base64url of the SHA-256 of the
public key's DER), so a verifier with several keys picks the right one.

Pure functions over the maintained ``cryptography`` package: no files, no
clock of their own (``now`` is a parameter), so both signers and the
verifier share them and unit tests pin the time. Claim checks that need the
API (does the bound pod still exist?) are the caller's.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Leeway for exp/nbf, as square/go-jose's ValidateWithLeeway in kube-apiserver (1 minute).
LEEWAY = 60.0


class TokenInvalid(Exception):
    """The token is not one of ours, or is expired, not yet valid, or for another audience."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise TokenInvalid(f"malformed token: {e}")


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts whose header decodes to JSON with an alg: worth verifying as a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (TokenInvalid, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


# ------------------------------------------------------------------ keys
def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key) -> bytes:
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a PEM private key: {e}")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("service account signing keys must be RSA keys")
    return key


def load_public_keys(pem: bytes) -> list:
    """Every RSA public key in a PEM file: PUBLIC KEY blocks, or the public half of private keys."""
    keys = []
    blocks = [b for b in pem.split(b"-----END ") if b"-----BEGIN " in b]
    for block in blocks:
        start = block.index(b"-----BEGIN ")
        label = block[start + 11:].split(b"-----", 1)[0]
        text = block[start:] + b"-----END " + label + b"-----\n"
        try:
            if b"PRIVATE" in label:
                keys.append(serialization.load_pem_private_key(text, password=None).public_key())
            elif b"PUBLIC" in label:
                keys.append(serialization.load_pem_public_key(text))
        except (ValueError, TypeError) as e:
            raise ValueError(f"bad PEM block {label.decode(errors='replace')}: {e}")
    keys = [k for k in keys if isinstance(k, rsa.RSAPublicKey)]
    if not keys:
        raise ValueError("no RSA public key found")
    return keys


def key_id(public_key) -> str:
    """Upstream's kid: base64url(sha256(DER SubjectPublicKeyInfo))."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


# ------------------------------------------------------------------ sign / verify
def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    header = {"alg": "RS256", "kid": key_id(key.public_key())}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def verify(token: str, public_keys: Iterable, *, now: float, audiences: Iterable[str] | None = None,
           issuers: Iterable[str] | None = None) -> dict[str, Any]:
    """The token's claims, after its signature, exp/nbf (with LEEWAY), issuer and audience check out.

    ``audiences``: the token must name at least one of them (None: no audience check, as for legacy
    tokens); ``issuers``: its ``iss`` must be one of them (None: any)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed token")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError:
        raise TokenInvalid("malformed token")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenInvalid("malformed token")
    if header.get("alg") != "RS256":
        raise TokenInvalid(f"unsupported signing algorithm {header.get('alg')!r}")
    sig = b64url_decode(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    keys = list(public_keys)
    kid = header.get("kid")
    if kid:
        named = [k for k in keys if key_id(k) == kid]
        keys = named or keys
    for k in keys:
        try:
            k.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            break
        except InvalidSignature:
            continue
    else:
        raise TokenInvalid("invalid signature")
    if issuers is not None and claims.get("iss") not in set(issuers):
        raise TokenInvalid("token issuer is not trusted")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, (int, float)) and now > exp + LEEWAY:
        raise TokenInvalid("token has expired")
    if isinstance(nbf, (int, float)) and now < nbf - LEEWAY:
        raise TokenInvalid("token is not valid yet")
    if audiences is not None:
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
        if not set(aud) & set(audiences):
            raise TokenInvalid("token audiences is invalid")
    return claims
