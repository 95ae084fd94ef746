"""CloudFormation intrinsic functions, resolved against what the local runtime created.

Supported: Ref, Fn::GetAtt, Fn::Join, Fn::Sub (both forms), Fn::Select, Fn::Split and the pseudo parameters
AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix and AWS::StackName (of the local runtime's account,
or of the account given: `operations` resolves a template against a deployed stack with it). Anything else, and a
reference to a resource the runtime did not create, is refused with the place in the template it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from local_runtime.account import ACCOUNT_ID, PARTITION, REGION, URL_SUFFIX
from local_runtime.assembly import Stack
from local_runtime.errors import NotEmulated

SUPPORTED = ("Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Physical:
    """What a created resource resolves to: `Ref` and its `Fn::GetAtt` attributes."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def references(value: Any) -> set[str]:
    """The logical ids `value` refers to through Ref, Fn::GetAtt or Fn::Sub (pseudo parameters excluded)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            found.add(_get_att_parts(value["Fn::GetAtt"], "")[0])
        elif set(value) == {"Fn::Sub"}:
            template = value["Fn::Sub"][0] if isinstance(value["Fn::Sub"], list) else value["Fn::Sub"]
            found |= {name.split(".")[0] for name in _SUB_VARIABLE.findall(template) if not name.startswith("!")}
        for item in value.values():
            found |= references(item)
    return {name for name in found if not name.startswith("AWS::")}


# The pseudo parameters of the one account the local runtime plays (AWS::StackName is the stack's).
LOCAL_ACCOUNT = {
    "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": PARTITION, "AWS::URLSuffix": URL_SUFFIX,
}  # fmt: skip


class Resolver:
    """Resolves template values; `physical` is filled in as the runtime creates resources. `account` gives the
    pseudo parameters of the account (all but AWS::StackName): the local runtime's unless given."""

    def __init__(
        self, stack: Stack, physical: Mapping[str, Physical], account: Mapping[str, str] = LOCAL_ACCOUNT
    ) -> None:
        self._stack = stack
        self._physical = physical
        self._pseudo = {**account, "AWS::StackName": stack.name}

    def resolve(self, value: Any, where: str) -> Any:
        """`where` names the place in the template (e.g. `PresenceTrackPresenceFunction.Environment`), for errors."""
        if isinstance(value, list):
            return [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self._ref(argument, where)
            if key == "Fn::GetAtt":
                return self._get_att(argument, where)
            if key == "Fn::Join":
                return self._join(argument, where)
            if key == "Fn::Sub":
                return self._sub(argument, where)
            if key == "Fn::Select":
                return self._select(argument, where)
            if key == "Fn::Split":
                return self._split(argument, where)
            if key.startswith("Fn::") or key == "Condition":
                raise NotEmulated(
                    f"{where}: {key} is not supported by the local runtime (it resolves {', '.join(SUPPORTED)})"
                )
        return {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}

    def resolve_string(self, value: Any, where: str) -> str:
        resolved = self.resolve(value, where)
        if not isinstance(resolved, str):
            raise NotEmulated(f"{where}: expected a string, the template gives {resolved!r}")
        return resolved

    def _ref(self, name: Any, where: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        return self._physical_of(name, where).ref

    def _get_att(self, argument: Any, where: str) -> str:
        logical_id, attribute = _get_att_parts(argument, where)
        physical = self._physical_of(logical_id, where)
        if attribute not in physical.attributes:
            resource_type = self._stack.resources[logical_id].type
            raise NotEmulated(
                f"{where}: Fn::GetAtt {logical_id}.{attribute} is not emulated for {resource_type} "
                f"(the runtime knows {', '.join(sorted(physical.attributes)) or 'no attributes'})"
            )
        return physical.attributes[attribute]

    def _physical_of(self, logical_id: Any, where: str) -> Physical:
        if logical_id in self._physical:
            return self._physical[logical_id]
        resource = self._stack.resources.get(logical_id)
        if resource is None:
            raise NotEmulated(f"{where}: refers to {logical_id!r}, which is neither a resource nor a pseudo parameter "
                              "the local runtime knows (template parameters are not supported)")
        raise NotEmulated(
            f"{where}: refers to {resource.label}, a {resource.type} the local runtime does not emulate"
        )

    def _join(self, argument: Any, where: str) -> str:
        delimiter, items = argument
        parts = self.resolve(items, f"{where}.Fn::Join")
        return delimiter.join(self._text(part, where) for part in parts)

    def _sub(self, argument: Any, where: str) -> str:
        template, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
        values = {name: self.resolve(value, f"{where}.Fn::Sub.{name}") for name, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the literal text ${Literal}
                return "${" + name[1:] + "}"
            if name in values:
                return self._text(values[name], where)
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name, where)
            return self._ref(name, where)

        return _SUB_VARIABLE.sub(substitute, template)

    def _select(self, argument: Any, where: str) -> Any:
        index, items = argument
        resolved = self.resolve(items, f"{where}.Fn::Select")
        return resolved[int(self.resolve(index, where))]

    def _split(self, argument: Any, where: str) -> list[str]:
        delimiter, source = argument
        return self.resolve_string(source, f"{where}.Fn::Split").split(delimiter)

    @staticmethod
    def _text(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise NotEmulated(f"{where}: expected a string, the template gives {value!r}")
        return value


def _get_att_parts(argument: Any, where: str) -> tuple[str, str]:
    if isinstance(argument, str) and "." in argument:
        logical_id, _, attribute = argument.partition(".")
        return logical_id, attribute
    if isinstance(argument, list) and len(argument) == 2 and all(isinstance(part, str) for part in argument):
        return argument[0], argument[1]
    raise NotEmulated(f"{where}: Fn::GetAtt {argument!r} is not of the form [LogicalId, Attribute]")
