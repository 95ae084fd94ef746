"""The environment variables `sam local invoke --env-vars` needs to run a function of cdk.out's template against
the deployed stack. SAM resolves a variable's `Ref` to the logical id (a table named
`PresenceConnectivity32EE8179` exists nowhere), so each function's variables are resolved here against the
deployed stack instead: `Ref` to the physical id ListStackResources gives, `Fn::GetAtt` to the attribute built
from it (stack.py), and a `Custom::AWS` response (the account's IoT data endpoint) by making the resource's own
read-only call again. What cannot be resolved that way fails the command, naming the variable.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from local_runtime.assembly import Stack, find_functions, select_function
from local_runtime.custom_resources import ANSWERED_CALLS, CUSTOM_AWS, answered, make_call
from local_runtime.errors import LocalRuntimeError
from local_runtime.intrinsics import Physical, Resolver, references
from operations.stack import FUNCTION, OperationsError, StackResources


def sam_env_vars(
    template: Stack, deployed: StackResources, client: Callable[[str], Any], functions: Sequence[str] = ()
) -> dict[str, dict[str, str]]:
    """{function logical id: {variable: value}} for every function of `template` with an environment (those of
    `functions` only, when given: friendly names, logical ids or construct paths), resolved against `deployed`;
    `client(service)` makes the clients a custom resource's call needs."""
    chosen = {select_function(find_functions(template), name).logical_id for name in functions}
    physical = dict(deployed.physical)
    resolver = Resolver(template, physical, deployed.account.pseudo_parameters)
    found: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for resource in template.of_type(FUNCTION):
        variables = resource.properties.get("Environment", {}).get("Variables", {})
        if not variables or (chosen and resource.logical_id not in chosen):
            continue
        found[resource.logical_id] = {}
        for name, value in variables.items():
            where = f"{resource.logical_id} {name}"
            try:
                _read_custom_resources(references(value), template, deployed, physical, resolver, client)
                found[resource.logical_id][name] = resolver.resolve_string(value, where)
            except (OperationsError, LocalRuntimeError) as error:
                problems.append(f"{where}: {error}")
    if problems:
        listing = "\n  ".join(problems)
        raise OperationsError(f"These variables cannot be resolved against the stack {deployed.name}:\n  {listing}")
    return found


def _read_custom_resources(
    logical_ids: set[str],
    template: Stack,
    deployed: StackResources,
    physical: dict[str, Physical],
    resolver: Resolver,
    client: Callable[[str], Any],
) -> None:
    """Checks every resource referred to exists in the deployed stack, and reads the response of each
    `Custom::AWS` among them (once)."""
    for logical_id in sorted(logical_ids):
        if logical_id not in deployed.physical:
            raise OperationsError(f"{logical_id} is not a resource of the deployed stack (is cdk.out newer than it?)")
        resource = template.resources[logical_id]
        if resource.type != CUSTOM_AWS or physical[logical_id].attributes:
            continue
        create = resource.properties.get("Create")
        if not answered(create):
            calls = ", ".join(f"{service} {action}" for service, action in ANSWERED_CALLS)
            raise OperationsError(f"{resource.label}: the response of a Custom::AWS is read for {calls} only")
        made = make_call(resource, resolver.resolve_string(create, f"{logical_id}.Create"), client)
        physical[logical_id] = Physical(ref=physical[logical_id].ref, attributes=made.physical.attributes)
