"""IoT Core's side of a custom authorizer, as `aws iot test-invoke-authorizer` and a connecting device see it:
the request IoT builds from a connection (MQTT username, password and client ID; or an HTTP/WebSocket request's
headers and query string), the token-signature check IoT makes before it invokes the function when signing
is on, the invocation (which the function's resource policy must allow for this authorizer), and the checks
IoT makes of the answer before it lets the device in.

An answer IoT would refuse (a principalId that is not 1-128 letters and digits, more than 10 policy
documents, one over 2,048 characters without whitespace, refresh or disconnect times outside 300-86,400 s)
is reported as such: on AWS the connection fails.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local_runtime.assembly import Resource, Stack
from local_runtime.cloud import AUTHORIZER, EmbeddedAws
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.event_sources import invoke_denied
from local_runtime.functions import Invocation, LocalFunction, LocalFunctions

SIGNATURE_HEADER = "x-amz-customauthorizer-signature"
AUTHORIZER_NAME_PARAMETER = "x-amz-customauthorizer-name"
_PRINCIPAL_ID = re.compile(r"[a-zA-Z0-9]{1,128}")
_PROPERTIES = {
    "AuthorizerFunctionArn", "AuthorizerName", "Status", "TokenKeyName", "TokenSigningPublicKeys", "SigningDisabled",
    "EnableCachingForHttp", "Tags",
}  # fmt: skip


@dataclass(frozen=True)
class Authorizer:
    name: str
    arn: str
    resource: Resource
    function: LocalFunction
    token_key_name: str | None
    signing_keys: dict[str, str]  # key name -> PEM public key
    signing_disabled: bool
    active: bool
    denied: str | None  # why the function's resource policy does not let IoT invoke it for this authorizer


@dataclass(frozen=True)
class Connection:
    """What a device sends: MQTT (client ID, username, password) or HTTP/WebSocket (headers, query string)."""

    protocol: str  # "mqtt", "http" or "websocket"
    client_id: str | None = None
    username: str | None = None
    password: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    server_name: str = "example-ats.iot.eu-west-1.amazonaws.com"
    connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the same for a connection's refreshes


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # why, in IoT's terms
    request: dict[str, Any] | None = None  # what the function got, when it was invoked
    invocation: Invocation | None = None


def load_authorizers(stack: Stack, cloud: EmbeddedAws, functions: LocalFunctions) -> dict[str, Authorizer]:
    found = {}
    for resource in stack.of_type(AUTHORIZER):
        unknown = sorted(set(resource.properties) - _PROPERTIES)
        if unknown:
            raise NotEmulated(f"{resource.label}: authorizer property {', '.join(unknown)} is not emulated")
        resolve = cloud.resolver.resolve
        arn = resolve(resource.properties["AuthorizerFunctionArn"], f"{resource.logical_id}.AuthorizerFunctionArn")
        function = functions.for_arn(arn)
        if function is None:
            raise NotEmulated(f"{resource.label}: {arn} is not a function this runtime can run")
        physical = cloud.physical[resource.logical_id]
        found[physical.ref] = Authorizer(
            name=physical.ref,
            arn=physical.attributes["Arn"],
            resource=resource,
            function=function,
            token_key_name=resource.properties.get("TokenKeyName"),
            signing_keys=resolve(resource.properties.get("TokenSigningPublicKeys", {}), resource.logical_id),
            signing_disabled=resource.properties.get("SigningDisabled") in (True, "true"),
            active=resource.properties.get("Status", "ACTIVE") == "ACTIVE",
            denied=invoke_denied(cloud, function, "iot.amazonaws.com", physical.attributes["Arn"]),
        )
    return found


def authorize(authorizer: Authorizer, connection: Connection) -> Decision:
    """What IoT does with `connection` through `authorizer`."""
    if not authorizer.active:
        return Decision(False, f"the authorizer {authorizer.name} is INACTIVE")
    request: dict[str, Any] = {
        "signatureVerified": False,
        "protocols": ["tls", "mqtt"] if connection.protocol == "mqtt" else ["tls", "http"],
        "protocolData": {"tls": {"serverName": connection.server_name}},
        "connectionMetadata": {"id": connection.connection_id},
    }
    if connection.protocol != "mqtt":
        request["protocolData"]["http"] = {"headers": dict(connection.headers), "queryString": connection.query_string}
    # MQTT over WebSocket carries a CONNECT too: devices (the AWS IoT Device SDK among them) may authenticate
    # in its username and password rather than in the upgrade request.
    if connection.protocol == "mqtt" or connection.username is not None or connection.password is not None:
        mqtt: dict[str, Any] = {"clientId": connection.client_id}
        if connection.username is not None:
            mqtt["username"] = connection.username
        if connection.password is not None:
            mqtt["password"] = base64.b64encode(connection.password).decode()
        request["protocolData"]["mqtt"] = mqtt
        if connection.protocol != "mqtt":
            request["protocols"].append("mqtt")
    token = _token(authorizer, connection)
    if not authorizer.signing_disabled:
        # IoT verifies the token's signature itself and does not invoke the function when it fails.
        if token is None:
            return Decision(False, f"token signing is on and the request has no {authorizer.token_key_name} token")
        signature = _signature(connection)
        if signature is None or not _verified(token, signature, authorizer.signing_keys):
            return Decision(False, "the token's signature does not verify with the authorizer's signing keys")
        request["token"], request["signatureVerified"] = token, True
    elif token is not None:
        request["token"] = token
    if authorizer.denied is not None:
        return Decision(False, f"IoT cannot invoke the function: {authorizer.denied}", request)
    invocation = authorizer.function.invoke(request)
    if invocation.error is not None:
        return Decision(False, f"the function failed ({invocation.error.type}): IoT denies", request, invocation)
    problem = response_problem(invocation.result)
    if problem is not None:
        return Decision(False, f"IoT refuses the function's answer: {problem}", request, invocation)
    allowed = invocation.result["isAuthenticated"] is True
    return Decision(allowed, "authenticated" if allowed else "the function denied it", request, invocation)


def response_problem(response: Any) -> str | None:
    """Why IoT would refuse this answer of an authorizer function, or None."""
    if not isinstance(response, dict) or not isinstance(response.get("isAuthenticated"), bool):
        return "isAuthenticated is not a boolean"
    if not response["isAuthenticated"]:
        return None
    if not isinstance(response.get("principalId"), str) or not _PRINCIPAL_ID.fullmatch(response["principalId"]):
        return "principalId is not 1-128 letters and digits"
    documents = response.get("policyDocuments")
    if not isinstance(documents, list) or not 1 <= len(documents) <= 10:
        return "policyDocuments is not a list of 1 to 10 documents"
    for document in documents:
        if not isinstance(document, str) or len(re.sub(r"\s", "", document)) > 2048:
            return "a policy document is not a string of at most 2,048 characters without whitespace"
        try:
            json.loads(document)
        except ValueError:
            return "a policy document is not JSON"
    for name in ("disconnectAfterInSeconds", "refreshAfterInSeconds"):
        value = response.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 300 <= value <= 86400:
            return f"{name} is not a whole number from 300 to 86,400"
    return None


def _parameter(connection: Connection, wanted: str) -> str | None:
    """A header (HTTP, WebSocket) or query-string parameter of the connection, or one that rides on the MQTT
    username after a `?` (`name?x-amz-customauthorizer-name=...&<token key>=...`)."""
    for name, value in connection.headers.items():
        if name.lower() == wanted.lower():
            return value
    queries = [connection.query_string]
    if connection.username and "?" in connection.username:
        queries.append(connection.username.split("?", 1)[1])
    for query in queries:
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name == wanted:
                return unquote(value)
    return None


def requested_authorizer(connection: Connection) -> str | None:
    """The authorizer a connection names (header, query string or MQTT username), or None for the default."""
    return _parameter(connection, AUTHORIZER_NAME_PARAMETER)


def _token(authorizer: Authorizer, connection: Connection) -> str | None:
    return None if authorizer.token_key_name is None else _parameter(connection, authorizer.token_key_name)


def _signature(connection: Connection) -> str | None:
    return _parameter(connection, SIGNATURE_HEADER)


def _verified(token: str, signature: str, keys: dict[str, str]) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    for pem in keys.values():
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise LocalRuntimeError("token signing keys must be RSA public keys")
        try:
            key.verify(raw, token.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False
