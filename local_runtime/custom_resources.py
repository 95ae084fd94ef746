"""aws-cdk-lib's AwsCustomResource (`Custom::AWS`): when CloudFormation creates one, its provider function makes
one AWS SDK call, the JSON of the resource's Create property, and answers with the response flattened (nested
keys joined with '.'), which is what Fn::GetAtt reads, and a physical id, which is what Ref reads.

The runtime makes that call itself, against the embedded AWS, when it is one the embedded AWS answers as AWS
does (ANSWERED_CALLS); any other call is not made and its resource not created, so that a reference to it is
refused, naming it, as a reference to any resource the runtime does not emulate. The call is read as the
provider of aws-cdk-lib 2.275 reads it: service and action as the JavaScript SDK spells them, parameters
(`PHYSICAL:RESOURCEID:` stands for the physical id), `physicalResourceId` (`id`, or `responsePath` into the
response; with neither, the logical id) and `outputPaths`; the data holds `apiVersion` and `region` too, as
the provider adds them. A call option that could change the answer (another region, an assumed role, errors
to ignore...) is refused. A call that fails fails the deployment, so it stops the runtime with AWS's error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import ClientError, ParamValidationError

from local_runtime.assembly import Resource
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.intrinsics import Physical

CUSTOM_AWS = "Custom::AWS"
# (JavaScript SDK v3 client, command) -> the boto3 client and method making the same call. Only calls that moto
# answers as AWS does belong here.
ANSWERED_CALLS = {("iot", "DescribeEndpoint"): ("iot", "describe_endpoint")}
# logApiResponseData only decides what the provider function logs.
_CALL_OPTIONS = {"service", "action", "parameters", "physicalResourceId", "outputPaths", "logApiResponseData"}
_PHYSICAL_ID_PLACEHOLDER = "PHYSICAL:RESOURCEID:"


@dataclass(frozen=True)
class CallMade:
    resource: Resource
    call: str  # as the template names it, e.g. Iot.describeEndpoint
    physical: Physical


def answered(create: Any) -> bool:
    """Whether the call of a Create property is one the embedded AWS answers. Read without resolving the
    property: a call that is not made may refer to what the runtime does not create."""
    names = _names(create)
    return names is not None and _sdk_names(*names) in ANSWERED_CALLS


def make_call(resource: Resource, create: str, clients: Callable[[str], Any]) -> CallMade:
    """Makes the call of `create` (the resolved Create property of `resource`) as the provider does on creation."""
    call = json.loads(create)
    name, label = f"{call['service']}.{call['action']}", resource.label
    unknown = sorted(set(call) - _CALL_OPTIONS)
    if unknown:
        raise NotEmulated(f"{label}: its call {name} has {', '.join(unknown)}, not emulated by the local runtime")
    client_name, method = ANSWERED_CALLS[_sdk_names(call["service"], call["action"])]
    client = clients(client_name)
    physical_id = call.get("physicalResourceId", {}).get("id", resource.logical_id)
    try:
        response = getattr(client, method)(**_with_physical_id(call.get("parameters", {}), physical_id))
    except (ClientError, ParamValidationError) as error:
        raise LocalRuntimeError(f"{label}: its call {name} fails, so the deployment would: {error}") from None
    response.pop("ResponseMetadata")
    data = {"apiVersion": client.meta.service_model.api_version, "region": client.meta.region_name}
    data.update(_flatten(response))
    response_path = call.get("physicalResourceId", {}).get("responsePath")
    if response_path is not None:
        if response_path not in data:
            raise LocalRuntimeError(f"{label}: the response of {name} has no {response_path} for its physical id")
        physical_id = data[response_path]
    if "outputPaths" in call:
        data = {key: value for key, value in data.items() if key.startswith(tuple(call["outputPaths"]))}
    return CallMade(resource, name, Physical(ref=physical_id, attributes=data))


def _names(create: Any) -> tuple[str, str] | None:
    """Service and action from the JSON text, or from the text of its Fn::Join with every value that is not
    literal text left out (CDK joins references into the JSON's strings)."""
    if isinstance(create, dict) and set(create) == {"Fn::Join"}:
        delimiter, parts = create["Fn::Join"]
        create = delimiter.join(part if isinstance(part, str) else "" for part in parts)
    if not isinstance(create, str):
        return None
    try:
        call = json.loads(create)
    except ValueError:
        return None
    if not isinstance(call, dict):
        return None
    service, action = call.get("service"), call.get("action")
    return (service, action) if isinstance(service, str) and isinstance(action, str) else None


def _sdk_names(service: str, action: str) -> tuple[str, str]:
    """The v3 client and command, as the provider normalizes them: `Iot`, `IoT` and `@aws-sdk/client-iot` name
    one client; `describeEndpoint`, `DescribeEndpoint` and `DescribeEndpointCommand` one command."""
    client = service.lower().removeprefix("@aws-sdk/client-")
    command = action[:1].upper() + action[1:] if action[:1].islower() else action.removesuffix("Command")
    return client, command


def _with_physical_id(value: Any, physical_id: str) -> Any:
    if value == _PHYSICAL_ID_PLACEHOLDER:
        return physical_id
    if isinstance(value, list):
        return [_with_physical_id(item, physical_id) for item in value]
    if isinstance(value, dict):
        return {key: _with_physical_id(item, physical_id) for key, item in value.items()}
    return value


def _flatten(value: Any, path: str = "") -> dict[str, Any]:
    """The provider's flattening: nested keys, and list indexes, joined with '.'."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    else:
        return {path: value}
    flat: dict[str, Any] = {}
    for name, item in items:
        flat.update(_flatten(item, f"{path}.{name}" if path else name))
    return flat
