"""Redrives into the deployed stack, through boto3 clients of the caller's account: SendMessage, Lambda's
asynchronous Invoke, and iot-data Publish on the account's own data endpoint (iot:Data-ATS)."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from operations.dead_letters import Function
from operations.stack import OperationsError

ACCEPTED = 202  # Lambda's answer to an asynchronous invocation it queued


class AwsTargets:
    """`client` makes a boto3 client: `client(service, **options)`, such as `boto3.Session().client`."""

    def __init__(self, client: Callable[..., Any]) -> None:
        self._client = client
        self._clients: dict[str, Any] = {}

    def _get(self, service: str) -> Any:
        if service not in self._clients:
            if service == "iot-data":
                endpoint = self._get("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
                self._clients[service] = self._client("iot-data", endpoint_url=f"https://{endpoint}")
            else:
                self._clients[service] = self._client(service)
        return self._clients[service]

    def send(self, queue_url: str, body: str, message_attributes: Mapping[str, Mapping[str, Any]]) -> None:
        request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
        if message_attributes:
            request["MessageAttributes"] = message_attributes
        self._get("sqs").send_message(**request)

    def invoke(self, function: Function, payload: Any) -> None:
        answer = self._get("lambda").invoke(
            FunctionName=function.arn, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
        if answer["StatusCode"] != ACCEPTED:
            status = answer["StatusCode"]
            raise OperationsError(f"Lambda answered {status}, not {ACCEPTED}, to an invocation of {function.name}")

    def publish(self, topic: str, payload: bytes) -> None:
        self._get("iot-data").publish(topic=topic, qos=1, payload=payload)
