"""The custom authorizer's request, settings and answer, as AWS IoT Core defines them today.

IoT invokes the authorizer on every connection that uses it (MQTT, MQTT over WebSocket, HTTP publish) with:

    {"token": "...",                      # the value of the TokenKeyName header / query parameter / username
                                          #   query parameter, when IoT found one (and checked its signature)
     "signatureVerified": true,           # whether IoT checked the token's signature (token signing on)
     "protocols": ["tls", "mqtt"],        # or ["tls", "http"], ["tls", "http", "mqtt"] (WebSocket)
     "protocolData": {
         "tls": {"serverName": "..."},
         "http": {"headers": {"name": "value"}, "queryString": "?name=value"},
         "mqtt": {"username": "...", "password": "<base64>", "clientId": "..."}},
     "connectionMetadata": {"id": "<uuid>"}}

and the 2018 shape `{"type": "TOKEN", "authorizationToken": "...", "authorizerId": "...", "endpoint": "..."}`.
The answer is `{"isAuthenticated", "principalId", "policyDocuments": ["<JSON>", ...], "disconnectAfterInSeconds",
"refreshAfterInSeconds", "context"}`; a denial is `{"isAuthenticated": false}`.

The models are NamedTuples: typed, and cheap at cold start. A request keeps the token (it has to be verified)
but never prints it: `repr` of a request hides it, so a stray log line or traceback cannot show it.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from typing import Any, Mapping, NamedTuple
from urllib.parse import unquote

# AWS IoT client IDs that can stand in a policy's ARN as they are: the thing-name alphabet, no policy wildcards
# (* ?), no policy variables (${...}), no `/`; MQTT allows far more, this authorizer admits only these.
CLIENT_ID = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# What AWS's TestInvokeAuthorizer accepts as a token: at most 6144 characters.
MAX_TOKEN_LENGTH = 6144
MAX_PASSWORD_LENGTH = 4 * ((MAX_TOKEN_LENGTH + 2) // 3)  # the base64 of the longest token
# A username or query string carries the token, its signature (at most 2560) and the authorizer's name.
MAX_QUERY_LENGTH = 12_288
MAX_HEADERS = 100
MAX_FIELD_LENGTH = 1024  # client ID, connection id, server name: anything longer is not IoT's
ALGORITHMS = ("ES256", "RS256", "EdDSA")

# Where the token was found (logged, so that an operator sees how a device connects), in the order looked at.
FROM_TOKEN = "token"  # IoT extracted it (TokenKeyName) and, with signing on, verified its signature
FROM_PASSWORD = "mqtt.password"
FROM_HEADER = "http.header"
FROM_QUERY = "http.queryString"
FROM_USERNAME = "mqtt.username"
FROM_2018 = "authorizationToken"


class Refusal(Exception):
    """A reason to deny: `reason` is the metric name, `detail` a fixed text (never a value of the request)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# Reasons (each is a metric, and the `reason` of the log line)
AUTHORIZED = "Authorized"
DENIED_MALFORMED = "DeniedMalformedRequest"
DENIED_OVERSIZED = "DeniedOversized"
DENIED_NO_TOKEN = "DeniedNoToken"
DENIED_MALFORMED_TOKEN = "DeniedMalformedToken"
DENIED_ALGORITHM = "DeniedWrongAlgorithm"
DENIED_UNKNOWN_KEY = "DeniedUnknownKey"
DENIED_SIGNATURE = "DeniedBadSignature"
DENIED_NONCANONICAL_SIGNATURE = "DeniedNonCanonicalSignature"
DENIED_EXPIRED = "DeniedExpired"
DENIED_NOT_YET_VALID = "DeniedNotYetValid"
DENIED_EXPIRES_SOON = "DeniedExpiresTooSoon"
DENIED_ISSUER = "DeniedWrongIssuer"
DENIED_AUDIENCE = "DeniedWrongAudience"
DENIED_MISSING_CLAIM = "DeniedMissingClaim"
DENIED_INVALID_TOKEN = "DeniedInvalidToken"
DENIED_CLIENT_ID = "DeniedInvalidClientId"
DENIED_CLIENT_MISMATCH = "DeniedClientIdMismatch"
DENIED_CONFIGURATION = "DeniedMissingConfiguration"
DENIED_POLICY_SIZE = "DeniedPolicyTooLarge"
DENIED_ERROR = "DeniedAuthorizerError"
DENIED = (
    DENIED_MALFORMED, DENIED_OVERSIZED, DENIED_NO_TOKEN, DENIED_MALFORMED_TOKEN, DENIED_ALGORITHM,
    DENIED_UNKNOWN_KEY, DENIED_SIGNATURE, DENIED_NONCANONICAL_SIGNATURE, DENIED_EXPIRED, DENIED_NOT_YET_VALID, DENIED_EXPIRES_SOON,
    DENIED_ISSUER, DENIED_AUDIENCE, DENIED_MISSING_CLAIM, DENIED_INVALID_TOKEN, DENIED_CLIENT_ID,
    DENIED_CLIENT_MISMATCH, DENIED_CONFIGURATION, DENIED_POLICY_SIZE, DENIED_ERROR,
)  # fmt: skip


class AuthorizationRequest(NamedTuple):
    token: str | None
    token_source: str | None  # FROM_*: where the token was found
    client_id: str | None  # the MQTT CONNECT's client ID, when IoT passed one
    protocols: tuple[str, ...]
    connection_id: str | None
    signature_verified: bool | None
    format_2018: bool = False

    def __repr__(self) -> str:  # the token is a credential: never in a repr, a log line or a traceback
        token = "<none>" if self.token is None else f"<{len(self.token)} characters>"
        return (
            f"AuthorizationRequest(token={token}, token_source={self.token_source!r}, client_id={self.client_id!r}, "
            f"protocols={self.protocols!r}, connection_id={self.connection_id!r})"
        )

    __str__ = __repr__


class Settings(NamedTuple):
    """The function's configuration (environment variables, set by the stack)."""

    region: str
    keys_parameter: str
    algorithm: str  # one of ALGORITHMS: the only one a token may use
    issuer: str
    audience: str
    leeway_seconds: int
    keys_refresh_seconds: int
    token_key_name: str
    # (action, templates) for publish, subscribe, receive; `{clientId}` stands for the device's client ID
    topics: tuple[tuple[str, tuple[str, ...]], ...]
    policy_refresh_seconds: int = 3600


class VerifiedToken(NamedTuple):
    subject: str  # `sub`: the device's client ID (= its thing name)
    expires_at: float  # `exp`, seconds since the epoch
    key_id: str | None


class Decision(NamedTuple):
    allowed: bool
    reason: str  # the metric name of the outcome, also logged
    detail: str = ""  # why, for the log line; never a secret
    client_id: str | None = None
    principal_id: str = ""
    policy_documents: tuple[str, ...] = ()
    disconnect_after_seconds: int = 0
    refresh_after_seconds: int = 0
    context: Mapping[str, str] = {}
    key_id: str | None = None

    def answer(self) -> dict[str, Any]:
        """The authorizer's response, exactly as IoT expects it."""
        if not self.allowed:
            return {"isAuthenticated": False}
        return {
            "isAuthenticated": True,
            "principalId": self.principal_id,
            "policyDocuments": list(self.policy_documents),
            "disconnectAfterInSeconds": self.disconnect_after_seconds,
            "refreshAfterInSeconds": self.refresh_after_seconds,
            "context": dict(self.context),
        }


def parse_request(event: Any, token_key_name: str) -> AuthorizationRequest:
    """Reads the request and finds its token; raises Refusal (malformed, oversized) naming fields, never values.

    The token is taken from the first of these that holds one (a request normally carries it in one place):
    `token` (IoT found it under the TokenKeyName and, with token signing on, verified its signature), the MQTT
    password, the HTTP header named `token_key_name` (any case), the query-string parameter of that name, the
    MQTT username's query-string parameter of that name, and the 2018 shape's `authorizationToken`. A request
    without any is `DeniedNoToken`. A parameter given twice in one query string is malformed: which of the two
    to believe is not the authorizer's guess to make.
    """
    if not isinstance(event, Mapping):
        raise Refusal(DENIED_MALFORMED, "the request is not a JSON object")
    if event.get("type") == "TOKEN" and "protocolData" not in event:
        token = _string(event, "authorizationToken", MAX_TOKEN_LENGTH)
        return AuthorizationRequest(_non_empty(token), FROM_2018 if token else None, None, (), None, None, True)

    protocols = event.get("protocols", [])
    if not isinstance(protocols, list) or len(protocols) > 8 or not all(isinstance(p, str) for p in protocols):
        raise Refusal(DENIED_MALFORMED, "protocols must be a list of names")
    data = _object(event, "protocolData")
    mqtt = _object(data, "mqtt", "protocolData.mqtt")
    http = _object(data, "http", "protocolData.http")
    metadata = _object(event, "connectionMetadata")
    verified = event.get("signatureVerified")
    client_id = _string(mqtt, "clientId", MAX_FIELD_LENGTH, "protocolData.mqtt.clientId")
    connection_id = _string(metadata, "id", MAX_FIELD_LENGTH, "connectionMetadata.id")

    token, source = _non_empty(_string(event, "token", MAX_TOKEN_LENGTH)), FROM_TOKEN
    if token is None:
        token, source = _password(mqtt), FROM_PASSWORD
    if token is None:
        token, source = _header(http, token_key_name), FROM_HEADER
    if token is None:
        query = _string(http, "queryString", MAX_QUERY_LENGTH, "protocolData.http.queryString")
        token, source = _query_parameter(query, token_key_name, "protocolData.http.queryString"), FROM_QUERY
    if token is None:
        username = _string(mqtt, "username", MAX_QUERY_LENGTH, "protocolData.mqtt.username")
        query = username.partition("?")[2] if username else None
        token, source = _query_parameter(query, token_key_name, "protocolData.mqtt.username"), FROM_USERNAME
    return AuthorizationRequest(
        token=token,
        token_source=source if token is not None else None,
        client_id=client_id,
        protocols=tuple(protocols),
        connection_id=connection_id,
        signature_verified=verified if isinstance(verified, bool) else None,
    )


def _object(parent: Mapping[str, Any], field: str, name: str | None = None) -> Mapping[str, Any]:
    value = parent.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Refusal(DENIED_MALFORMED, f"{name or field} must be an object")
    return value


def _string(parent: Mapping[str, Any], field: str, max_length: int, name: str | None = None) -> str | None:
    value = parent.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refusal(DENIED_MALFORMED, f"{name or field} must be a string")
    if len(value) > max_length:
        raise Refusal(DENIED_OVERSIZED, f"{name or field} is longer than {max_length} characters")
    return value


def _non_empty(value: str | None) -> str | None:
    return value if value else None


def _password(mqtt: Mapping[str, Any]) -> str | None:
    encoded = _string(mqtt, "password", MAX_PASSWORD_LENGTH, "protocolData.mqtt.password")
    if not encoded:
        return None
    try:
        raw = b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(DENIED_MALFORMED, "protocolData.mqtt.password is not base64") from None
    try:
        password = raw.decode("utf-8")
    except UnicodeDecodeError:  # binary: not a token; the token may be in the username
        return None
    if len(password) > MAX_TOKEN_LENGTH:
        raise Refusal(DENIED_OVERSIZED, f"the MQTT password is longer than {MAX_TOKEN_LENGTH} characters")
    return password or None


def _header(http: Mapping[str, Any], name: str) -> str | None:
    headers = http.get("headers")
    if headers is None:
        return None
    if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS:
        raise Refusal(DENIED_MALFORMED, f"protocolData.http.headers must be an object of at most {MAX_HEADERS}")
    wanted = name.lower()
    found = [key for key in headers if isinstance(key, str) and key.lower() == wanted]
    if len(found) > 1:
        raise Refusal(DENIED_MALFORMED, "the token header is given more than once")
    return _non_empty(_string(headers, found[0], MAX_TOKEN_LENGTH, "the token header")) if found else None


def _query_parameter(query: str | None, name: str, field: str) -> str | None:
    if not query:
        return None
    values = []
    for pair in query.lstrip("?").split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == name:
            values.append(unquote(value))
    if len(values) > 1:
        raise Refusal(DENIED_MALFORMED, f"the token parameter is given more than once in {field}")
    if values and len(values[0]) > MAX_TOKEN_LENGTH:
        raise Refusal(DENIED_OVERSIZED, f"the token in {field} is longer than {MAX_TOKEN_LENGTH} characters")
    return _non_empty(values[0]) if values else None
