"""The app's custom authorizer end to end on the local runtime: a device with a token minted by device_tokens
connects as IoT Core would put it through the authorizer (IoT's signature check, then the function with the
keys from its SSM parameter), and gets a policy for its own client ID only."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from device_tokens import mint
from local_runtime import LocalRuntime
from local_runtime.authorizers import Connection

AUTHORIZER = "iot_backend_devices"


def mqtt(client_id: str, token: str, signature: str) -> Connection:
    # The token and IoT's signature ride on the username's query string; the password is the token again.
    username = (
        f"{client_id}?x-amz-customauthorizer-name={AUTHORIZER}"
        f"&x-amz-customauthorizer-signature={quote(signature, safe='')}&x-device-token={token}"
    )
    return Connection("mqtt", client_id=client_id, username=username, password=token.encode())


def test_a_device_with_its_own_token_connects_and_gets_only_its_own_topics(
    authorizer_assembly: Path, authorizer_keys: Path
) -> None:
    minted = mint(authorizer_keys, "sensor-1", ttl_seconds=3600)
    stranger = mint(authorizer_keys, "sensor-2", ttl_seconds=3600)
    with LocalRuntime(authorizer_assembly) as runtime:
        allowed = runtime.authorize(AUTHORIZER, mqtt("sensor-1", minted.token, minted.signature))
        # sensor-2's valid token, presented by a client that calls itself sensor-1
        impostor = runtime.authorize(AUTHORIZER, mqtt("sensor-1", stranger.token, stranger.signature))
        # a valid token with another token's signature: IoT refuses it before the function runs
        forged = runtime.authorize(AUTHORIZER, mqtt("sensor-1", minted.token, stranger.signature))
    assert allowed.allowed, allowed.reason
    assert allowed.invocation is not None
    answer = allowed.invocation.result
    assert 300 <= answer["refreshAfterInSeconds"] <= answer["disconnectAfterInSeconds"] <= 3600
    statements = [s for document in answer["policyDocuments"] for s in json.loads(document)["Statement"]]
    resources = [r for s in statements for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert any(r.endswith(":client/sensor-1") for r in resources)
    assert all("sensor-1" in r for r in resources) and not any("sensor-2" in r for r in resources)
    assert not impostor.allowed and impostor.reason == "the function denied it"
    assert not forged.allowed and forged.invocation is None
