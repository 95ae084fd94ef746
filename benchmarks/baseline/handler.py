"""The baseline: the least a function of this app can do on Lambda, import boto3 and create its DynamoDB client.

Its cold start is what every function here pays anyway; the functions are measured against it.
"""

from typing import Any

import boto3

dynamodb = boto3.client("dynamodb")


def handler(event: dict[str, Any], context: Any) -> None:
    return None
