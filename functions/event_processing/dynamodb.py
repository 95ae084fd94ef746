"""Runs a ConditionalWrite as one DynamoDB UpdateItem."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from event_processing.conditional_writes import ConditionalWrite, Placeholders

_serializer = TypeSerializer()


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def write_conditionally(client: Any, table_name: str, write: ConditionalWrite) -> bool:
    """True when the write happened, False when its condition rejected it (a stale or repeated event)."""
    placeholders = Placeholders()
    request: dict[str, Any] = {
        "TableName": table_name,
        "Key": _typed(dict(write.key)),
        "UpdateExpression": write.update.render(placeholders),
    }
    if write.condition is not None:
        request["ConditionExpression"] = write.condition.render(placeholders)
    request["ExpressionAttributeNames"] = placeholders.names
    if placeholders.values:
        request["ExpressionAttributeValues"] = _typed(placeholders.values)
    try:
        client.update_item(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
