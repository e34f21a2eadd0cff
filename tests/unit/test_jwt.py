"""api/jwt.py: signatures, key ids, time and audience checks, and PEM loading."""
import pytest

from api import jwt


@pytest.fixture(scope="module")
def key():
    return jwt.generate_private_key()


def test_roundtrip_and_kid(key):
    tok = jwt.sign({"iss": "i", "aud": ["a"], "exp": 2000, "nbf": 1000, "sub": "s"}, key)
    assert jwt.looks_like_jwt(tok)
    header = jwt.b64url_decode(tok.split(".")[0])
    assert jwt.key_id(key.public_key()).encode() in header
    claims = jwt.verify(tok, [key.public_key()], now=1500, audiences=["a", "b"], issuers=["i"])
    assert claims["sub"] == "s"


def test_rejections(key):
    other = jwt.generate_private_key()
    tok = jwt.sign({"iss": "i", "aud": "a", "exp": 2000, "nbf": 1000}, key)
    with pytest.raises(jwt.TokenInvalid, match="signature"):
        jwt.verify(tok, [other.public_key()], now=1500)
    with pytest.raises(jwt.TokenInvalid, match="expired"):
        jwt.verify(tok, [key.public_key()], now=2000 + jwt.LEEWAY + 1)
    assert jwt.verify(tok, [key.public_key()], now=2000 + jwt.LEEWAY - 1)
    with pytest.raises(jwt.TokenInvalid, match="not valid yet"):
        jwt.verify(tok, [key.public_key()], now=1000 - jwt.LEEWAY - 1)
    with pytest.raises(jwt.TokenInvalid, match="audiences"):
        jwt.verify(tok, [key.public_key()], now=1500, audiences=["x"])
    with pytest.raises(jwt.TokenInvalid, match="issuer"):
        jwt.verify(tok, [key.public_key()], now=1500, issuers=["j"])
    head, body, sig = tok.split(".")
    forged = jwt.b64url(b'{"iss":"i","aud":"a","exp":9999999999}')
    with pytest.raises(jwt.TokenInvalid):
        jwt.verify(f"{head}.{forged}.{sig}", [key.public_key()], now=1500)
    assert not jwt.looks_like_jwt("abc")
    assert not jwt.looks_like_jwt("a.b.c")


def test_pem_loading(key):
    pem = jwt.private_key_pem(key)
    assert jwt.key_id(jwt.load_private_key(pem).public_key()) == jwt.key_id(key.public_key())
    other = jwt.generate_private_key()
    both = jwt.public_key_pem(key) + pem + jwt.public_key_pem(other)
    ids = {jwt.key_id(k) for k in jwt.load_public_keys(both)}
    assert ids == {jwt.key_id(key.public_key()), jwt.key_id(other.public_key())}
    with pytest.raises(ValueError):
        jwt.load_public_keys(b"nothing here")
    with pytest.raises(ValueError):
        jwt.load_private_key(b"nothing here")
