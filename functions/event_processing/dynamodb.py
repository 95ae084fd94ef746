"""Runs a ConditionalWrite as one DynamoDB UpdateItem; and a table as a function's logic uses it."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from event_processing.conditional_writes import ConditionalWrite, Placeholders

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class WriteResult(NamedTuple):
    applied: bool
    current: dict[str, Any] | None  # when the condition rejected the write: the item as it is (None if absent)


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def write_conditionally(client: Any, table_name: str, write: ConditionalWrite) -> bool:
    """True when the write happened, False when its condition rejected it (a stale or repeated event)."""
    return write_or_get_current(client, table_name, write).applied


def write_or_get_current(client: Any, table_name: str, write: ConditionalWrite) -> WriteResult:
    """The write, and when its condition rejects it, the item that made it fail, in the same call."""
    placeholders = Placeholders()
    request: dict[str, Any] = {
        "TableName": table_name,
        "Key": _typed(dict(write.key)),
        "UpdateExpression": write.update.render(placeholders),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
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
            item = error.response.get("Item")
            return WriteResult(False, None if item is None else {k: _deserializer.deserialize(v) for k, v in item.items()})
        raise
    return WriteResult(True, None)


class Table:
    """One table through `client`: conditional writes, strongly consistent reads by key, and the sort keys of
    a partition (what `track_inventory.logic.InventoryTable` asks for)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client, self.name = client, name

    def write(self, write: ConditionalWrite) -> bool:
        return write_conditionally(self.client, self.name, write)

    def read(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.name, Key=_typed(dict(key)), ConsistentRead=True).get("Item")
        return None if item is None else {k: _deserializer.deserialize(v) for k, v in item.items()}

    def sort_keys(self, partition: Mapping[str, str], sort_key: str, prefix: str) -> list[str]:
        """The sort keys (strings) starting with `prefix` in the partition `partition` (its key name -> value),
        page by page, strongly consistent."""
        [(partition_key, value)] = partition.items()
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#p = :p AND begins_with(#s, :prefix)",
            "ProjectionExpression": "#s",
            "ExpressionAttributeNames": {"#p": partition_key, "#s": sort_key},
            "ExpressionAttributeValues": {":p": {"S": value}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        keys: list[str] = []
        while True:
            page = self.client.query(**request)
            keys += [item[sort_key]["S"] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return keys
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
