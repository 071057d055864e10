"""CDS Hooks 2.0 JWT checks: forged and broken tokens get a bare 401, good ES384 / RS384 tokens get through.

Keys of the `jku` issuer are fetched from a real HTTP server on 127.0.0.1; the other issuer's keys
are inline in the issuers file.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service import create_app
from cds_service.auth import MemoryJtiStore
from cds_service.errors import ConfigurationError
from cds_service.logs import JsonFormatter
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture
from tests.local_server import send_json, serve

BASE = "https://cds.example.org"
SIGN_URL = f"{BASE}/cds-services/prior-auth-order-sign"
JKU_ISS = "https://ehr.example.org/fhir"
INLINE_ISS = "https://other-ehr.example.org"
TENANT = "hospital-1"

EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_EC_KEY = ec.generate_private_key(ec.SECP384R1())
ROTATED_EC_KEY = ec.generate_private_key(ec.SECP384R1())


def _jwk(key, kid: str, alg: str) -> dict:
    algo = ECAlgorithm if alg.startswith("ES") else RSAAlgorithm
    out = json.loads(algo.to_jwk(key.public_key()))
    return {**out, "kid": kid, "alg": alg, "use": "sig"}


class Jwks:
    """The JWKS the EHR publishes; tests rotate it and count fetches."""

    def __init__(self):
        self.keys = [_jwk(EC_KEY, "ec-1", "ES384")]
        self.fetches = 0

    def route(self, handler):
        self.fetches += 1
        send_json(handler, {"keys": self.keys}, content_type="application/json")


@pytest.fixture
def jwks() -> Jwks:
    return Jwks()


@pytest.fixture
def jwks_server(jwks) -> Iterator:
    with serve({"/jwks.json": jwks.route, "/evil.json": jwks.route}) as server:
        yield server


@pytest.fixture
def issuers_file(tmp_path, jwks_server):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({
        JKU_ISS: {"jku": f"{jwks_server.url}/jwks.json"},
        INLINE_ISS: {"jwks": {"keys": [_jwk(RSA_KEY, "rsa-1", "RS384")]}, "tenant": TENANT},
    }))
    return path


@pytest.fixture
def secure_app(issuers_file):
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards"), "CDS_PUBLIC_BASE_URL": BASE,
                       "CDS_JWT_ISSUERS_FILE": str(issuers_file), "CDS_JWKS_REFRESH_COOLDOWN_S": 0},
                      jti_store=MemoryJtiStore())


@pytest.fixture
def secure_client(secure_app):
    return secure_app.test_client()


@pytest.fixture
def auth_log() -> Iterator[list[dict]]:
    """The auth logger's records, as the JSON lines operators would read."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cds_service")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def claims(**override) -> dict:
    now = int(time.time())
    out = {"iss": JKU_ISS, "sub": "ehr-client", "aud": SIGN_URL, "iat": now, "exp": now + 300,
           "jti": str(uuid.uuid4())}
    out.update(override)
    return {k: v for k, v in out.items() if v is not None}


def es384(payload: dict | None = None, key=EC_KEY, **headers) -> str:
    return jwt.encode(payload or claims(), key, algorithm="ES384", headers={"kid": "ec-1", "typ": "JWT", **headers})


def rs384(payload: dict | None = None) -> str:
    payload = payload or claims(iss=INLINE_ISS, tenant=TENANT)
    return jwt.encode(payload, RSA_KEY, algorithm="RS384", headers={"kid": "rsa-1", "typ": "JWT"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict, payload: dict) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def alg_none() -> str:
    return _segments({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims()) + "."


def hs256_with_public_key() -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public key, which anyone can read."""
    pem = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": "ec-1"}, claims())
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def hook_body() -> dict:
    return load_fixture(FIXTURES / "mitoxantrone" / "ms_rrms_step_therapy_done_criteria_met.json")["request"]


def call(client, token: str | None, path: str = "/cds-services/prior-auth-order-sign"):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(path, json=hook_body(), headers=headers)


BROKEN_TOKENS = {
    "no token": (lambda: None, 'no bearer token'),
    "empty bearer": (lambda: "", 'no bearer token'),
    "not a JWT": (lambda: "definitely-not-a-jwt", 'malformed token'),
    "alg none": (alg_none, "algorithm not allowed"),
    "HS256 signed with the public key": (hs256_with_public_key, "algorithm not allowed"),
    "expired": (lambda: es384(claims(iat=int(time.time()) - 900, exp=int(time.time()) - 600)), 'ExpiredSignatureError'),
    "future nbf": (lambda: es384(claims(nbf=int(time.time()) + 600)), '(nbf)'),
    "issued in the future": (lambda: es384(claims(iat=int(time.time()) + 600, exp=int(time.time()) + 900)), '(iat)'),
    "wrong aud (another service)": (
        lambda: es384(claims(aud=f"{BASE}/cds-services/prior-auth-order-select")), 'InvalidAudienceError'),
    "aud from the Host header": (
        lambda: es384(claims(aud="http://localhost/cds-services/prior-auth-order-sign")), 'InvalidAudienceError'),
    "unknown iss": (lambda: es384(claims(iss="https://stranger.example.com")), 'issuer not on the allowlist'),
    "unknown kid": (lambda: es384(kid="no-such-key"), "kid not in the issuer's JWKS"),
    "no kid": (lambda: jwt.encode(claims(), EC_KEY, algorithm="ES384"), 'no kid'),
    "bad signature": (lambda: es384(key=OTHER_EC_KEY), 'InvalidSignatureError'),
    "tampered payload": (lambda: _tamper(es384()), 'InvalidSignatureError'),
    "missing iss": (lambda: es384(claims(iss=None)), 'issuer not on the allowlist'),
    "missing sub": (lambda: es384(claims(sub=None)), '"sub"'),
    "missing aud": (lambda: es384(claims(aud=None)), '"aud"'),
    "missing exp": (lambda: es384(claims(exp=None)), '"exp"'),
    "missing iat": (lambda: es384(claims(iat=None)), '"iat"'),
    "missing jti": (lambda: es384(claims(jti=None)), '"jti"'),
    "lifetime of a year": (lambda: es384(claims(exp=int(time.time()) + 365 * 86400)), 'lifetime is too long'),
    "wrong tenant": (lambda: rs384(claims(iss=INLINE_ISS, tenant="hospital-2")), 'tenant'),
    "no tenant where one is configured": (lambda: rs384(claims(iss=INLINE_ISS)), 'tenant'),
    "RS384 header on an EC key": (
        lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS384", headers={"kid": "ec-1"}), 'algorithm differs'),
}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["sub"] = "someone-else"
    return ".".join([header, _b64(json.dumps(body).encode()), signature])


@pytest.mark.parametrize("name", list(BROKEN_TOKENS))
def test_broken_token_gets_a_bare_401_and_the_reason_is_logged(secure_client, auth_log, name):
    make, reason = BROKEN_TOKENS[name]
    response = call(secure_client, make())
    assert response.status_code == 401
    assert response.get_data() == b""
    assert response.headers["WWW-Authenticate"] == "Bearer"
    refusals = [json.loads(line)["reason"] for line in auth_log if '"auth.rejected"' in line]
    assert len(refusals) == 1 and reason in refusals[0]


def test_jku_off_the_allowlist_is_refused_without_fetching_it(secure_client, jwks_server, jwks):
    token = es384(jku=f"{jwks_server.url}/evil.json")
    assert call(secure_client, token).status_code == 401
    assert not any(hit.startswith("/evil.json") for hit in jwks_server.hits)


def test_replayed_jti_is_refused(secure_client):
    token = es384()
    assert call(secure_client, token).status_code == 200
    assert call(secure_client, token).status_code == 401


def test_good_es384_token_from_the_jku_server_gets_200(secure_client, jwks_server):
    response = call(secure_client, es384())
    assert response.status_code == 200
    assert response.get_json()["cards"]
    assert jwks_server.hits == ["/jwks.json"]


def test_token_naming_its_allowlisted_jku_gets_200(secure_client, jwks_server):
    assert call(secure_client, es384(jku=f"{jwks_server.url}/jwks.json")).status_code == 200


def test_good_rs384_token_with_inline_keys_and_tenant_gets_200(secure_client):
    assert call(secure_client, rs384()).status_code == 200


def test_jwks_is_cached_between_calls(secure_client, jwks):
    for _ in range(3):
        assert call(secure_client, es384()).status_code == 200
    assert jwks.fetches == 1


def test_unknown_kid_refreshes_the_jwks_once_the_key_is_published(secure_client, jwks):
    assert call(secure_client, es384()).status_code == 200
    jwks.keys.append(_jwk(ROTATED_EC_KEY, "ec-2", "ES384"))
    token = jwt.encode(claims(), ROTATED_EC_KEY, algorithm="ES384", headers={"kid": "ec-2"})
    assert call(secure_client, token).status_code == 200
    assert jwks.fetches == 2


def test_discovery_and_feedback_need_a_token_too(secure_client):
    assert secure_client.get("/cds-services").status_code == 401
    assert secure_client.post("/cds-services/prior-auth-order-sign/feedback", json={"feedback": []}).status_code == 401
    token = es384(claims(aud=f"{BASE}/cds-services"))
    assert secure_client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_preflight_health_and_openapi_need_no_token(secure_client):
    preflight = secure_client.options("/cds-services/prior-auth-order-sign", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"]
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert secure_client.get(path).status_code == 200


def test_refusal_reason_is_logged_without_the_token(secure_client, auth_log):
    token = es384(claims(aud=f"{BASE}/elsewhere"))
    assert call(secure_client, token).status_code == 401
    refusals = [json.loads(line) for line in auth_log if '"auth.rejected"' in line]
    assert refusals and "Audience" in refusals[0]["reason"]
    assert not any(token in line or token.split(".")[2] in line for line in auth_log)


def test_unreachable_jwks_server_means_401(tmp_path, jwks):
    with serve({"/jwks.json": jwks.route}) as server:
        url = server.url
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({JKU_ISS: {"jku": f"{url}/jwks.json"}}))
    app = create_app({"CDS_TODAY": TODAY, "CDS_PUBLIC_BASE_URL": BASE, "CDS_JWT_ISSUERS_FILE": str(path)})
    assert call(app.test_client(), es384()).status_code == 401


def test_production_refuses_to_start_without_issuers():
    with pytest.raises(ConfigurationError, match="CDS_JWT_ISSUERS_FILE"):
        create_app({"CDS_ENV": "production", "CDS_JWT_ISSUERS_FILE": None, "CDS_PUBLIC_BASE_URL": BASE})


def test_production_refuses_to_take_the_audience_from_the_host_header(issuers_file):
    with pytest.raises(ConfigurationError, match="CDS_PUBLIC_BASE_URL"):
        create_app({"CDS_ENV": "production", "CDS_JWT_ISSUERS_FILE": str(issuers_file), "CDS_PUBLIC_BASE_URL": None})


def test_production_refuses_a_plain_http_jku(issuers_file):
    with pytest.raises(ConfigurationError, match="https"):
        create_app({"CDS_ENV": "production", "CDS_JWT_ISSUERS_FILE": str(issuers_file), "CDS_PUBLIC_BASE_URL": BASE})


def test_development_says_loudly_that_checks_are_off(auth_log):
    create_app({"CDS_ENV": "development", "CDS_JWT_ISSUERS_FILE": None})
    assert any("JWT CHECKS ARE OFF" in line and '"warning"' in line for line in auth_log)


def test_issuers_file_with_an_issuer_without_keys_stops_start_up(tmp_path):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({JKU_ISS: {"tenant": TENANT}}))
    with pytest.raises(ConfigurationError, match="jku"):
        create_app({"CDS_JWT_ISSUERS_FILE": str(path), "CDS_PUBLIC_BASE_URL": BASE})
