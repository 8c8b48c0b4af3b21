"""Bearer JWTs for Coinbase CDP API keys, built the way Coinbase's own SDK builds them.

Coinbase Advanced Trade authenticates every REST request with a fresh JWT signed by the key's
private key (``coinbase/coinbase-advanced-py`` @ 54fb8ed, ``coinbase/jwt_generator.py`` and
``coinbase/rest/rest_base.py``):

* header: ``alg`` ES256 for an EC (P-256) key, EdDSA for an Ed25519 key; ``kid`` the key name
  (``organizations/{org}/apiKeys/{id}``); ``nonce`` a random hex string, so no two tokens match;
* claims: ``iss`` ``"cdp"``, ``sub`` the key name, ``nbf`` now, ``exp`` now + 120 s, and ``uri``
  ``"METHOD host/path"`` (host without scheme, path without its query string).

A token is bound to one method and path and lives two minutes, so one is built per attempt,
never cached. The private key arrives as the PEM text the CDP portal hands out (an EC key; the
escaped ``\\n`` of a JSON or .env value is accepted) or as base64 of a raw Ed25519 key (32-byte
seed or 64-byte seed + public key). Errors name what was wrong with the key, never its content.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
JWT_LIFETIME_S = 120  # what Coinbase's SDK sets; the API refuses longer-lived tokens
ISSUER = "cdp"


class CoinbaseKeyError(ValueError):
    """The configured private key cannot be used (the message never contains the key)."""


def load_private_key(secret: str) -> PrivateKey:
    """The private key from PEM text (EC or Ed25519) or base64 of a raw Ed25519 key."""
    text = secret.strip().replace("\\n", "\n")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise CoinbaseKeyError("the Coinbase private key is not a readable unencrypted PEM key") from None
        if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            return key
        raise CoinbaseKeyError(f"a Coinbase key must be ECDSA (P-256) or Ed25519, not {type(key).__name__}")
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CoinbaseKeyError("the Coinbase private key is neither PEM nor base64") from None
    if len(raw) not in (32, 64):
        raise CoinbaseKeyError(f"a raw Ed25519 key decodes to 32 or 64 bytes, this one to {len(raw)}")
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """The JWS algorithm Coinbase expects for a key type."""
    return "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey) else "ES256"


def jwt_uri(method: str, host: str, path: str) -> str:
    """The ``uri`` claim: ``"POST api.coinbase.com/api/v3/brokerage/orders"`` (no query string)."""
    return f"{method.upper()} {host}{path.split('?', 1)[0]}"


def build_rest_jwt(key_name: str, private_key: PrivateKey, method: str, host: str, path: str,
                   now: float | None = None) -> str:
    """A token for one request: ``Authorization: Bearer <token>``."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": key_name, "iss": ISSUER, "nbf": issued, "exp": issued + JWT_LIFETIME_S,
              "uri": jwt_uri(method, host, path)}
    return jwt.encode(claims, private_key, algorithm=algorithm_for(private_key),
                      headers={"kid": key_name, "nonce": secrets.token_hex()})
