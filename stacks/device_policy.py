"""The document of the one shared device policy (see stacks.onboarding.device_access), as plain data without
CDK, so that the local runtime's tests can evaluate the very policy the app deploys.

It is written with policy variables so that each device may act only as its own thing."""

from __future__ import annotations

from typing import Any

THING = "${iot:Connection.Thing.ThingName}"
# The topic convention: devices publish data on dt/<app>/<thing>/<kind> and receive commands on
# cmd/<app>/<thing>/<command>; plus their own shadow.
DEVICE_TOPICS = {
    "publish": (f"dt/*/{THING}/*", f"$aws/things/{THING}/shadow/*"),
    "receive": (f"cmd/*/{THING}/*", f"$aws/things/{THING}/shadow/*"),
}


def device_policy_document(base: str) -> dict[str, Any]:
    """The policy for the account and region of `base` (`arn:<partition>:iot:<region>:<account>`)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Only as its own thing, and only with a certificate attached to that thing.
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{base}:client/{THING}",
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"{base}:topic/{topic}" for topic in DEVICE_TOPICS["publish"]],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [f"{base}:topicfilter/{topic}" for topic in DEVICE_TOPICS["receive"]],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": [f"{base}:topic/{topic}" for topic in DEVICE_TOPICS["receive"]],
            },
        ],
    }
