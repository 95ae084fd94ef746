"""The custom authorizer's decisions on plain values: which token admits which device, with which policy and for
how long, and the reason of every denial."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from authorize_device.keys import KeysUnavailable, KeyStore, parse_jwks
from authorize_device.logic import (
    P256_ORDER,
    account_of,
    decide,
    load_settings,
    policy_documents,
    principal_id,
)
from authorize_device.models import (
    FROM_2018,
    FROM_HEADER,
    FROM_PASSWORD,
    FROM_QUERY,
    FROM_TOKEN,
    FROM_USERNAME,
    AuthorizationRequest,
    Refusal,
    parse_request,
)
from events import load_event
from tests.authorizer_tokens import (
    ACCOUNT,
    DEVICE_KID,
    ENVIRONMENT,
    NOW,
    REGION,
    SAMPLE_JWKS,
    SAMPLE_OUTCOMES,
    TOKEN_KEY_NAME,
    assert_valid_answer,
    attacker_key,
    b64url,
    device_jwks,
    device_key,
    eddsa_twin,
    high_s_twin,
    mint,
    mqtt_request,
    public_jwk,
    settings,
    unb64url,
    with_signature,
)

KEYS = parse_jwks(device_jwks(), "ES256")


def decision(event: dict, now: float = NOW, **setting_overrides):
    config = settings(**setting_overrides)
    return decide(parse_request(event, config.token_key_name), KEYS, config, ACCOUNT, now)


def reason_of(token: str, client_id: str | None = "sensor-0001", now: float = NOW, **setting_overrides) -> str:
    return decision(mqtt_request(token, client_id), now, **setting_overrides).reason


# --- a valid token ------------------------------------------------------------------------------------------------


def test_a_valid_token_admits_its_device_with_a_policy_for_it_alone():
    result = decision(mqtt_request(mint("sensor-0001")))
    assert result.allowed and result.reason == "Authorized"
    answer = result.answer()
    assert_valid_answer(answer, "sensor-0001")
    assert answer["principalId"] == hashlib.sha256(b"sensor-0001").hexdigest()
    assert answer["context"] == {"clientId": "sensor-0001"}
    (document,) = [json.loads(text) for text in answer["policyDocuments"]]
    resources = {s["Action"]: s["Resource"] for s in document["Statement"]}
    assert resources == {
        "iot:Connect": [f"arn:aws:iot:{REGION}:{ACCOUNT}:client/sensor-0001"],
        "iot:Publish": [
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/dt/*/sensor-0001/*",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/$aws/things/sensor-0001/shadow/*",
        ],
        "iot:Subscribe": [
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topicfilter/cmd/*/sensor-0001/*",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topicfilter/$aws/things/sensor-0001/shadow/*",
        ],
        "iot:Receive": [
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/cmd/*/sensor-0001/*",
            f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/$aws/things/sensor-0001/shadow/*",
        ],
    }


def test_principal_ids_are_alphanumeric_and_one_per_client_id():
    ids = {principal_id(f"sensor-{n}") for n in range(2000)} | {principal_id("a" * 128), principal_id("x:y_z-1")}
    assert len(ids) == 2002
    assert all(len(i) == 64 and i.isalnum() for i in ids)
    assert principal_id("sensor-1") == principal_id("sensor-1")


@pytest.mark.parametrize(
    ("seconds_left", "refresh", "disconnect"),
    [
        (7 * 86_400, 3600, 86_400),  # a long token: the connection lasts AWS's maximum, refreshed hourly
        (20_000, 3600, 20_000),  # disconnected when the token expires
        (1_000, 1_000, 1_000),  # refreshed no later than that either
        (300, 300, 300),  # the shortest AWS accepts
    ],
)
def test_refresh_and_disconnect_never_outlive_the_token(seconds_left, refresh, disconnect):
    answer = decision(mqtt_request(mint(exp=int(NOW) + seconds_left))).answer()
    assert (answer["refreshAfterInSeconds"], answer["disconnectAfterInSeconds"]) == (refresh, disconnect)


def test_a_token_with_less_than_300_seconds_left_is_denied():
    assert reason_of(mint(exp=int(NOW) + 299)) == "DeniedExpiresTooSoon"
    # the clock skew lets an expired token through the expiry check, never into a connection
    assert reason_of(mint(exp=int(NOW) - 30)) == "DeniedExpiresTooSoon"


def test_the_policy_refresh_period_is_configurable_and_still_bounded_by_the_token():
    answer = decision(mqtt_request(mint(exp=int(NOW) + 10_000)), policy_refresh_seconds=600).answer()
    assert answer["refreshAfterInSeconds"] == 600
    answer = decision(mqtt_request(mint(exp=int(NOW) + 500)), policy_refresh_seconds=600).answer()
    assert answer["refreshAfterInSeconds"] == 500


def test_http_and_websocket_without_a_client_id_get_the_policy_of_the_tokens_subject():
    result = decision(mqtt_request(mint("sensor-0042"), client_id=None))
    assert result.allowed
    assert_valid_answer(result.answer(), "sensor-0042")


def test_an_audience_list_holding_ours_is_accepted():
    assert reason_of(mint(aud=["other", "iot"])) == "Authorized"


def test_a_token_without_kid_uses_the_only_key_of_the_set():
    assert reason_of(mint(kid=None)) == "Authorized"


def test_rs256_and_eddsa_keys_verify_when_pinned():
    for algorithm, key in (("RS256", rsa.generate_private_key(65537, 2048)), ("EdDSA", ed25519.Ed25519PrivateKey.generate())):
        jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
        keys = parse_jwks(json.dumps({"keys": [{**jwk, "kid": "k"}]}), algorithm)
        token = mint(key=key, kid="k", algorithm=algorithm)
        config = settings(algorithm=algorithm)
        assert decide(parse_request(mqtt_request(token), TOKEN_KEY_NAME), keys, config, ACCOUNT, NOW).allowed
        es256 = mint()  # an ES256 token is refused by an authorizer pinned to another algorithm
        assert decide(parse_request(mqtt_request(es256), TOKEN_KEY_NAME), keys, config, ACCOUNT, NOW).reason == "DeniedWrongAlgorithm"


# --- every denial has its reason -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: mint(exp=int(NOW) - 61), "DeniedExpired"),
        (lambda: mint(nbf=int(NOW) + 61), "DeniedNotYetValid"),
        (lambda: mint(iat=int(NOW) + 61), "DeniedNotYetValid"),
        (lambda: mint(iss="someone-else"), "DeniedWrongIssuer"),
        (lambda: mint(aud="another-service"), "DeniedWrongAudience"),
        (lambda: mint(aud=None), "DeniedMissingClaim"),
        (lambda: mint(iss=None), "DeniedMissingClaim"),
        (lambda: mint(exp=None), "DeniedMissingClaim"),
        (lambda: mint(sub=None), "DeniedMissingClaim"),
        (lambda: mint(exp=str(int(NOW) + 86_400)), "DeniedInvalidToken"),
        (lambda: mint(exp=True), "DeniedInvalidToken"),
        (lambda: mint(sub=12345), "DeniedInvalidToken"),
        (lambda: mint(key=attacker_key()), "DeniedBadSignature"),
        (lambda: mint(kid="not-in-the-set"), "DeniedUnknownKey"),
        (lambda: mint(algorithm="ES384", key=ec.generate_private_key(ec.SECP384R1())), "DeniedWrongAlgorithm"),
        (lambda: mint(algorithm="HS256", key=b"k" * 32), "DeniedWrongAlgorithm"),
        (lambda: "not-a-jwt", "DeniedMalformedToken"),
        (lambda: "a.b", "DeniedMalformedToken"),
        (lambda: mint() + ".extra", "DeniedMalformedToken"),
    ],
)
def test_every_bad_token_is_denied_with_its_reason(token, reason):
    assert reason_of(token()) == reason


def test_a_subject_a_policy_cannot_name_is_denied():
    for subject in ("*", "sensor/1", "sensor+1", "${iot:ClientId}", "x" * 129, "sensör", ""):
        assert reason_of(mint(subject), client_id=None) in ("DeniedInvalidClientId", "DeniedMissingClaim")


def test_the_mqtt_client_id_must_be_the_tokens_subject():
    token = mint("sensor-0001")
    assert reason_of(token, client_id="sensor-0002") == "DeniedClientIdMismatch"
    assert reason_of(token, client_id="sensor-00011") == "DeniedClientIdMismatch"
    assert reason_of(token, client_id="SENSOR-0001") == "DeniedClientIdMismatch"
    assert reason_of(token, client_id="") == "DeniedClientIdMismatch"


def test_no_token_no_keys_and_unsafe_inputs_are_denied():
    assert decision({"protocols": ["tls", "mqtt"], "protocolData": {"mqtt": {"clientId": "a"}}}).reason == "DeniedNoToken"
    request = parse_request(mqtt_request(mint()), TOKEN_KEY_NAME)
    assert decide(request, None, settings(), ACCOUNT, NOW).reason == "DeniedMissingConfiguration"


def test_a_signature_of_the_wrong_length_is_bad_before_any_verification():
    header, payload, signature = mint().split(".")
    assert reason_of(f"{header}.{payload}.{b64url(unb64url(signature)[:63])}") == "DeniedBadSignature"
    assert reason_of(f"{header}.{payload}.") == "DeniedBadSignature"


def test_the_high_s_twin_of_a_valid_token_verifies_with_the_key_yet_is_denied():
    token = mint()
    twin = high_s_twin(token)
    assert twin != token and reason_of(token) == "Authorized"
    # OpenSSL accepts (r, n - s) as it accepts (r, s): only the authorizer's own check refuses the second spelling.
    header, payload, signature = twin.split(".")
    assert jwt.get_algorithm_by_name("ES256").verify(f"{header}.{payload}".encode(), device_key().public_key(), unb64url(signature))
    assert reason_of(twin) == "DeniedNonCanonicalSignature"
    assert reason_of(high_s_twin(twin)) == "Authorized"  # respelled back: the token itself


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (P256_ORDER, 1), (1, P256_ORDER), (2**256 - 1, 1), (1, P256_ORDER // 2 + 1)],
    ids=["r=0", "s=0", "r=n", "s=n", "r=2^256-1", "s=n/2+1"],
)
def test_an_es256_signature_outside_its_canonical_range_is_denied_before_any_verification(r, s):
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert reason_of(with_signature(mint(), signature)) == "DeniedNonCanonicalSignature"


def test_an_eddsa_signature_respelled_with_s_plus_l_is_refused_by_the_verification_itself():
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.get_algorithm_by_name("EdDSA").to_jwk(key.public_key()))
    keys = parse_jwks(json.dumps({"keys": [{**jwk, "kid": "k"}]}), "EdDSA")
    token = mint(key=key, kid="k", algorithm="EdDSA")
    twin = eddsa_twin(token)

    def reason(candidate: str) -> str:
        request = parse_request(mqtt_request(candidate), TOKEN_KEY_NAME)
        return decide(request, keys, settings(algorithm="EdDSA"), ACCOUNT, NOW).reason

    header, payload, signature = twin.split(".")
    with pytest.raises(InvalidSignature):  # cryptography (OpenSSL) requires S < L (RFC 8032, 5.1.7)
        key.public_key().verify(unb64url(signature), f"{header}.{payload}".encode())
    assert (reason(token), reason(twin)) == ("Authorized", "DeniedBadSignature")


def test_the_hmac_confusion_attack_with_the_public_key_as_secret_is_refused():
    pem = device_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "kid": DEVICE_KID, "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"iss": "device-backend", "aud": "iot", "sub": "sensor-0001", "exp": int(NOW) + 86_400}).encode())
    signature = b64url(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert reason_of(f"{header}.{payload}.{signature}") == "DeniedWrongAlgorithm"


# --- requests: where the token comes from ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "source"),
    [
        ("mqtt_username_password", FROM_PASSWORD),
        ("http_header", FROM_TOKEN),
        ("query_string", FROM_QUERY),
        ("websocket", FROM_HEADER),
        ("mqtt_username_query", FROM_USERNAME),
        ("format_2018", FROM_2018),
    ],
)
def test_each_sample_has_its_token_where_the_device_put_it(sample, source):
    request = parse_request(load_event(f"authorize_device/{sample}"), TOKEN_KEY_NAME)
    assert request.token_source == source
    assert request.token and request.token.count(".") == 2


def test_the_token_field_is_preferred_as_iot_extracted_and_checked_it():
    event = mqtt_request("from.the.password")
    event["token"] = "from.iot.token"
    assert parse_request(event, TOKEN_KEY_NAME).token == "from.iot.token"


def test_a_token_given_twice_in_one_query_string_is_malformed():
    event = {"protocolData": {"http": {"queryString": "?x-device-token=a.b.c&x-device-token=d.e.f"}}}
    with pytest.raises(Refusal) as refused:
        parse_request(event, TOKEN_KEY_NAME)
    assert refused.value.reason == "DeniedMalformedRequest"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "DeniedMalformedRequest"),
        ("text", "DeniedMalformedRequest"),
        ({"protocolData": []}, "DeniedMalformedRequest"),
        ({"protocolData": {"mqtt": {"password": "not base64!"}}}, "DeniedMalformedRequest"),
        ({"protocolData": {"mqtt": {"clientId": 7}}}, "DeniedMalformedRequest"),
        ({"protocols": "mqtt"}, "DeniedMalformedRequest"),
        ({"protocolData": {"http": {"headers": "x"}}}, "DeniedMalformedRequest"),
        ({"token": "x" * 6145}, "DeniedOversized"),
        ({"protocolData": {"mqtt": {"password": base64.b64encode(b"x" * 6145).decode()}}}, "DeniedOversized"),
        ({"protocolData": {"mqtt": {"password": "x" * 9000}}}, "DeniedOversized"),
        ({"protocolData": {"http": {"queryString": "?x-device-token=" + "x" * 6145}}}, "DeniedOversized"),
        ({"protocolData": {"http": {"headers": {"X-DEVICE-TOKEN": "x" * 6145}}}}, "DeniedOversized"),
    ],
)
def test_malformed_and_oversized_requests_are_refused(event, reason):
    with pytest.raises(Refusal) as refused:
        parse_request(event, TOKEN_KEY_NAME)
    assert refused.value.reason == reason


def test_a_requests_repr_never_shows_its_token():
    token = mint()
    request = parse_request(mqtt_request(token), TOKEN_KEY_NAME)
    assert token not in repr(request) and token not in str(request)
    assert isinstance(request, AuthorizationRequest)


def test_every_sample_token_verifies_against_the_samples_jwks_until_2036():
    keys = parse_jwks(SAMPLE_JWKS, "ES256")
    in_2035 = 2_051_222_400.0
    for sample, (reason, client_id) in SAMPLE_OUTCOMES.items():
        event = load_event(f"authorize_device/{sample}")
        try:
            request = parse_request(event, TOKEN_KEY_NAME)
        except Refusal as refusal:
            assert refusal.reason == reason, sample
            continue
        result = decide(request, keys, settings(), ACCOUNT, in_2035)
        assert result.reason == reason, sample
        if result.allowed:
            assert_valid_answer(result.answer(), client_id)


# --- policies ----------------------------------------------------------------------------------------------------


def test_a_policy_too_big_for_one_document_is_split_within_awss_limits():
    topics = (("publish", tuple(f"dt/{n}/{'x' * 200}/{{clientId}}/*" for n in range(12))), ("subscribe", ("c/{clientId}",)), ("receive", ("c/{clientId}",)))
    documents = policy_documents("s" * 128, REGION, ACCOUNT, topics)
    assert 1 < len(documents) <= 10
    answer = {"isAuthenticated": True, "principalId": "p", "policyDocuments": list(documents), "disconnectAfterInSeconds": 300, "refreshAfterInSeconds": 300}
    assert_valid_answer(answer, "s" * 128)
    published = [r for d in documents for s in json.loads(d)["Statement"] if s["Action"] == "iot:Publish" for r in s["Resource"]]
    assert len(published) == 12


def test_a_policy_that_cannot_fit_in_10_documents_denies():
    topics = (("publish", tuple(f"dt/{n}/{'x' * 240}/{{clientId}}" for n in range(60))), ("subscribe", ("c/{clientId}",)), ("receive", ("c/{clientId}",)))
    result = decision(mqtt_request(mint()), topics=topics)
    assert result.reason == "DeniedPolicyTooLarge"


# --- keys -------------------------------------------------------------------------------------------------------


def test_only_public_keys_for_the_pinned_algorithm_are_kept():
    private = {**public_jwk(device_key(), "with-private"), "d": b64url(b"\x01" * 32)}
    other_curve = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    small_rsa = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key()))
    jwks = {
        "keys": [
            public_jwk(device_key(), "good"),
            private,
            {**other_curve, "kid": "p384"},
            {**small_rsa, "kid": "rsa1024"},
            {**public_jwk(device_key(), "enc"), "use": "enc"},
            {**public_jwk(device_key(), "es384"), "alg": "ES384"},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
            "not a key",
        ]
    }
    keys = parse_jwks(json.dumps(jwks), "ES256")
    assert set(keys.by_id) == {"good"} and keys.skipped == 7 and keys.only is not None
    with pytest.raises(KeysUnavailable):
        parse_jwks(json.dumps({"keys": [private]}), "ES256")
    for text in ("", "[]", "{}", '{"keys": {}}', "not json"):
        with pytest.raises(KeysUnavailable):
            parse_jwks(text, "ES256")


def test_two_keys_need_a_kid_in_the_token():
    jwks = json.dumps({"keys": [public_jwk(device_key(), DEVICE_KID), public_jwk(attacker_key(), "second")]})
    keys = parse_jwks(jwks, "ES256")
    config = settings()
    request = parse_request(mqtt_request(mint(kid=None)), TOKEN_KEY_NAME)
    assert decide(request, keys, config, ACCOUNT, NOW).reason == "DeniedUnknownKey"
    request = parse_request(mqtt_request(mint()), TOKEN_KEY_NAME)
    assert decide(request, keys, config, ACCOUNT, NOW).allowed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_loaded_once_and_refreshed_after_their_period():
    fetched: list[int] = []
    clock = Clock()

    def fetch() -> str:
        fetched.append(1)
        return device_jwks()

    store = KeyStore(fetch, "ES256", 300, clock=clock)
    assert store.load()
    for clock.now in (0, 100, 299.9):
        assert store.current() is not None
    assert len(fetched) == 1  # no call on the request path within the period
    clock.now = 300
    assert store.current() is not None and len(fetched) == 2


def test_a_failed_refresh_keeps_the_keys_one_more_period_at_most_then_denies():
    clock = Clock()
    answers = [device_jwks()]
    failures: list[str] = []

    def fetch() -> str:
        if not answers:
            raise TimeoutError("SSM did not answer")
        return answers.pop(0)

    store = KeyStore(fetch, "ES256", 300, clock=clock, on_failure=failures.append)
    assert store.load()
    clock.now = 300  # refresh fails: the keys are kept
    assert store.current() is not None and failures == ["loading the keys failed: TimeoutError"]
    clock.now = 310  # attempts are spaced (30 s), no call on every request
    assert store.current() is not None and len(failures) == 1
    clock.now = 599
    assert store.current() is not None
    clock.now = 600  # one more period gone: deny
    assert store.current() is None
    answers.append("{not json")  # a parameter that is not a JWKS is a failure too, never an exception
    clock.now = 700
    assert store.current() is None and failures[-1] == "the keys parameter is not JSON"
    answers.append(device_jwks())  # recovers as soon as the parameter is good again
    clock.now = 730
    assert store.current() is not None


def test_a_cold_start_without_keys_denies_and_retries_later():
    clock = Clock()
    answers: list[str] = []

    def fetch() -> str:
        if not answers:
            raise ConnectionError("no network")
        return answers.pop(0)

    store = KeyStore(fetch, "ES256", 300, clock=clock)
    assert not store.load() and store.current() is None
    answers.append(device_jwks())
    clock.now = 10
    assert store.current() is None  # not before the retry delay
    clock.now = 30
    assert store.current() is not None


# --- configuration -------------------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_and_a_wrong_one_is_named():
    environment = {**ENVIRONMENT, "AWS_REGION": REGION}
    loaded = load_settings(environment)
    assert loaded.algorithm == "ES256" and loaded.leeway_seconds == 60 and loaded.policy_refresh_seconds == 3600
    assert dict(loaded.topics)["publish"] == ("dt/*/{clientId}/*", "$aws/things/{clientId}/shadow/*")
    for name, value in (
        ("TOKEN_ALGORITHM", "HS256"),
        ("TOKEN_ALGORITHM", "none"),
        ("TOKEN_ISSUER", ""),
        ("TOKEN_KEYS_PARAMETER", ""),
        ("CLOCK_SKEW_SECONDS", "9999"),
        ("KEYS_REFRESH_SECONDS", "soon"),
        ("DEVICE_TOPICS", '{"publish": ["dt/#"], "subscribe": [], "receive": []}'),
        ("DEVICE_TOPICS", '{"publish": ["dt/+/{clientId}"], "subscribe": [], "receive": []}'),
        ("DEVICE_TOPICS", "[]"),
        ("POLICY_REFRESH_SECONDS", "100"),
    ):
        with pytest.raises(Refusal) as refused:
            load_settings({**environment, name: value})
        assert refused.value.reason == "DeniedMissingConfiguration" and name in refused.value.detail


def test_the_account_comes_from_the_function_arn():
    assert account_of("arn:aws:lambda:eu-west-1:123456789012:function:authorizer") == "123456789012"
    for arn in (None, "", "arn:aws:lambda:eu-west-1::function:x", "not an arn", "arn:aws:lambda:eu-west-1:12345:function:x"):
        assert account_of(arn) is None
