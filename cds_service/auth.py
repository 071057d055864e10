"""Who may call: CDS Hooks 2.0 JWT verification of every discovery, hook and feedback call.

The CDS Client signs a short-lived JWT per call (CDS Hooks 2.0, "Trusting CDS Clients"): `iss`
on our allowlist, `kid` naming a key of that issuer's JWKS (inline in the issuers file, or fetched
from an allowlisted `jku`), an asymmetric algorithm, `aud` equal to the endpoint URL the caller
used, and a `jti` never seen before. A caller learns only "401"; the reason goes to the log,
never the token.

Issuers file (`CDS_JWT_ISSUERS_FILE`)::

    {"https://ehr.example.org": {"jku": "https://ehr.example.org/jwks.json",   # or a list of URLs
                                 "jwks": {"keys": [...]},                     # or inline keys
                                 "tenant": "hospital-1"}}                     # optional, checked when set
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jwt
import requests
from flask import Flask, Response, current_app, request
from jwt import PyJWK, PyJWKClient, PyJWKSet
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

from .errors import ConfigurationError
from .state import service_state

log = logging.getLogger("cds_service.auth")

# Asymmetric only: with a shared secret anyone holding the "public" key could sign. CDS Hooks
# recommends ES384 and RS384; the other curves and sizes are the same schemes.
ALLOWED_ALGORITHMS = ("ES384", "RS384", "ES256", "ES512", "RS256", "RS512", "PS256", "PS384", "PS512")
_KEY_FAMILY = {"EC": ("ES",), "RSA": ("RS", "PS")}
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
LEEWAY_S = 30  # clock skew between the EHR and us
MAX_LIFETIME_S = 3600  # CDS Hooks asks for exp within 5 minutes; past an hour the jti memory would grow unbounded
JWKS_MAX_BYTES = 256 * 1024
PROTECTED_PREFIX = "/cds-services"


class Rejected(Exception):
    """The token is refused; the message is for the log only and never holds the token."""


class JtiStore(Protocol):
    """Remembers token ids for their lifetime, shared by every worker that must agree on replays."""

    def remember(self, jti: str, issuer: str, expires_at: datetime) -> bool:
        """Store the id; False when (issuer, jti) was already stored and has not expired."""
        ...


class MemoryJtiStore:
    """One process's memory of token ids: right for tests and a single worker, not for several."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def remember(self, jti: str, issuer: str, expires_at: datetime) -> bool:
        now = datetime.now(UTC)
        with self._lock:
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            if (issuer, jti) in self._seen:
                return False
            self._seen[(issuer, jti)] = expires_at
            return True


@dataclass(frozen=True)
class FunctionJtiStore:
    """Adapts a plain `remember(jti, issuer, expires_at) -> bool` (e.g. the database's) to JtiStore."""

    function: Callable[[str, str, datetime], bool]

    def remember(self, jti: str, issuer: str, expires_at: datetime) -> bool:
        return self.function(jti, issuer, expires_at)


class BoundedJWKClient(PyJWKClient):
    """PyJWKClient whose fetch has a total deadline and size cap: a trickling JWKS server cannot hold a call."""

    def fetch_data(self) -> Any:
        deadline = time.monotonic() + self.timeout
        try:
            with requests.get(self.uri, timeout=(self.timeout, self.timeout), stream=True,
                              allow_redirects=False, headers={"Accept": "application/json", **self.headers}) as resp:
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(8192):
                    body += chunk
                    if len(body) > JWKS_MAX_BYTES:
                        raise ValueError("JWKS too large")
                    if time.monotonic() > deadline:
                        raise TimeoutError("JWKS fetch took too long")
            data = json.loads(body)
        except (requests.RequestException, TimeoutError, ValueError) as exc:
            raise PyJWKClientConnectionError(f"JWKS fetch failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise PyJWKClientError("The JWKS endpoint did not return a JSON object")
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        self._last_successful_fetch = time.monotonic()
        return data


@dataclass
class Issuer:
    """One trusted CDS Client: where its keys are, and the tenant it must name when configured."""

    iss: str
    jku: tuple[str, ...] = ()
    jwks: PyJWKSet | None = None
    tenant: str | None = None
    clients: dict[str, PyJWKClient] = field(default_factory=dict)

    def key(self, kid: str, jku: str | None) -> PyJWK:
        """The signing key `kid`, from the token's (allowlisted) jku, the inline set, or the configured jku."""
        if jku is not None:
            if jku not in self.jku:
                raise Rejected("jku is not on the issuer's allowlist")
            return self._fetched_key(jku, kid)
        if self.jwks is not None:
            for key in self.jwks.keys:
                if key.key_id == kid:
                    return key
            raise Rejected("kid not in the issuer's inline JWKS")
        for url in self.jku:
            try:
                return self._fetched_key(url, kid)
            except Rejected:
                continue
        raise Rejected("kid not in the issuer's JWKS")

    def _fetched_key(self, url: str, kid: str) -> PyJWK:
        try:
            return self.clients[url].get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            raise Rejected(f"the issuer's JWKS could not be fetched ({exc})") from exc
        except (PyJWKClientError, PyJWTError) as exc:
            raise Rejected(f"kid not in the issuer's JWKS ({type(exc).__name__})") from exc


def load_issuers(path: str | Path, *, production: bool, fetch_timeout_s: float = 2.0,
                 refresh_cooldown_s: float = 10.0) -> dict[str, Issuer]:
    """Read and check the issuers file at start-up; a bad file stops the service rather than letting anyone in."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"CDS_JWT_ISSUERS_FILE {path}: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigurationError(f"CDS_JWT_ISSUERS_FILE {path}: expected an object of issuers")
    issuers = {}
    for iss, spec in raw.items():
        if not isinstance(spec, dict) or not (spec.get("jku") or spec.get("jwks")):
            raise ConfigurationError(f"issuer {iss}: needs 'jku' or 'jwks'")
        jku = spec.get("jku") or ()
        jku = (jku,) if isinstance(jku, str) else tuple(jku)
        for url in jku:
            if production and not url.startswith("https://"):
                raise ConfigurationError(f"issuer {iss}: jku {url} must be https in production")
        try:
            jwks = PyJWKSet.from_dict(spec["jwks"]) if spec.get("jwks") else None
        except PyJWTError as exc:
            raise ConfigurationError(f"issuer {iss}: inline jwks is invalid ({exc})") from exc
        clients = {url: BoundedJWKClient(url, timeout=fetch_timeout_s, lifespan=300,
                                         cooldown_duration=refresh_cooldown_s) for url in jku}
        issuers[iss] = Issuer(iss, jku, jwks, spec.get("tenant"), clients)
    return issuers


class Verifier:
    """Checks one bearer token against the issuers, the endpoint URL and the jti memory."""

    def __init__(self, issuers: Mapping[str, Issuer], jti_store: JtiStore, leeway_s: float = LEEWAY_S,
                 max_lifetime_s: float = MAX_LIFETIME_S):
        self.issuers = dict(issuers)
        self.jti_store = jti_store
        self.leeway_s = leeway_s
        self.max_lifetime_s = max_lifetime_s

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The token's verified claims, or Rejected saying why."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError as exc:
            raise Rejected(f"malformed token ({type(exc).__name__})") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Rejected("algorithm not allowed")
        issuer = self.issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            raise Rejected("issuer not on the allowlist")
        kid, jku = header.get("kid"), header.get("jku")
        if not isinstance(kid, str) or not kid:
            raise Rejected("token has no kid")
        if jku is not None and not isinstance(jku, str):
            raise Rejected("jku is not a URL")
        key = issuer.key(kid, jku)
        claims = self._decode(token, key, alg, issuer.iss, audience)
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise Rejected("tenant does not match the issuer's")
        if claims["exp"] - time.time() > self.max_lifetime_s:
            raise Rejected("token lifetime is too long")
        expires_at = datetime.fromtimestamp(claims["exp"] + self.leeway_s, UTC)
        if not self.jti_store.remember(str(claims["jti"]), issuer.iss, expires_at):
            raise Rejected("jti already used (replay)")
        return claims

    def _decode(self, token: str, key: PyJWK, alg: str, iss: str, audience: str) -> dict[str, Any]:
        declared = key._jwk_data.get("alg") if isinstance(getattr(key, "_jwk_data", None), dict) else None
        if declared is not None and declared != alg:
            raise Rejected("token algorithm differs from the key's")
        if not alg.startswith(_KEY_FAMILY.get(key.key_type, ())):
            raise Rejected("token algorithm does not fit the key type")
        try:
            return jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=iss,
                              leeway=self.leeway_s,
                              options={"require": list(REQUIRED_CLAIMS), "verify_signature": True,
                                       "verify_exp": True, "verify_iat": True, "verify_nbf": True,
                                       "verify_aud": True, "verify_iss": True})
        except PyJWTError as exc:
            raise Rejected(f"{type(exc).__name__}: {exc}") from exc


def _unauthorized() -> Response:
    return Response(status=401, headers={"WWW-Authenticate": "Bearer"})


def _check_request() -> Response | None:
    """before_request: every /cds-services call but a CORS preflight needs a valid token."""
    if request.method == "OPTIONS" or not (request.path == PROTECTED_PREFIX
                                            or request.path.startswith(PROTECTED_PREFIX + "/")):
        return None
    verifier: Verifier = current_app.extensions["cds_auth"]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log.warning("request refused", extra={"event": "auth.rejected", "path": request.path,
                                               "reason": "no bearer token"})
        return _unauthorized()
    audience = service_state().base_url() + request.path
    try:
        claims = verifier.verify(token.strip(), audience)
    except Rejected as exc:
        log.warning("request refused", extra={"event": "auth.rejected", "path": request.path, "reason": str(exc)})
        return _unauthorized()
    request.environ["cds_service.jwt_issuer"] = claims["iss"]
    return None


def init_auth(app: Flask, settings: Mapping[str, Any], jti_store: JtiStore | None = None) -> None:
    """Require JWTs when issuers are configured; refuse to start in production without them."""
    production = settings.get("CDS_ENV") == "production"
    path = settings.get("CDS_JWT_ISSUERS_FILE")
    if not path:
        if production:
            raise ConfigurationError("CDS_ENV=production needs CDS_JWT_ISSUERS_FILE: refusing to start without "
                                     "JWT verification")
        log.warning("JWT CHECKS ARE OFF: CDS_JWT_ISSUERS_FILE is not set, so anyone can call this service "
                    "(development only)", extra={"event": "auth.disabled"})
        return
    if production and not settings.get("CDS_PUBLIC_BASE_URL"):
        raise ConfigurationError("CDS_ENV=production needs CDS_PUBLIC_BASE_URL: the JWT audience must not come "
                                 "from the Host header")
    issuers = load_issuers(path, production=production,
                           fetch_timeout_s=float(settings.get("CDS_JWKS_TIMEOUT_S", 2.0)),
                           refresh_cooldown_s=float(settings.get("CDS_JWKS_REFRESH_COOLDOWN_S", 10.0)))
    store = jti_store or settings.get("CDS_JTI_STORE") or MemoryJtiStore()
    if production and isinstance(store, MemoryJtiStore):
        log.warning("jti replay memory is per process; several workers need the shared store",
                    extra={"event": "auth.jti_memory"})
    app.extensions["cds_auth"] = Verifier(issuers, store)
    app.before_request(_check_request)
    log.info("JWT verification on", extra={"event": "auth.enabled", "issuers": len(issuers)})
