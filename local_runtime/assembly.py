"""Reads a CDK cloud assembly (the folder `cdk synth` writes): its stacks, their templates and assets, and
the Lambda functions the runtime can run from them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from local_runtime.errors import LocalRuntimeError

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST_ARTIFACT = "cdk:asset-manifest"
FUNCTION = "AWS::Lambda::Function"
LAYER = "AWS::Lambda::LayerVersion"

# Lambda's defaults when the template leaves them out.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3

# Function properties that change nothing the local runtime emulates: it runs the code with its environment,
# memory setting and timeout, on this machine, with no IAM, network isolation or CloudWatch.
_FUNCTION_PROPERTIES_WITHOUT_LOCAL_EFFECT = frozenset({
    "Architectures", "Description", "Role", "Tags", "TracingConfig", "ReservedConcurrentExecutions",
    "EphemeralStorage", "VpcConfig", "KmsKeyArn", "RuntimeManagementConfig", "CodeSigningConfigArn",
})  # fmt: skip
_FUNCTION_PROPERTIES_EMULATED = frozenset({
    "Code", "Handler", "Runtime", "MemorySize", "Timeout", "Environment", "Layers", "FunctionName", "LoggingConfig",
    "PackageType", "DeadLetterConfig",
})  # fmt: skip


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: Mapping[str, Any]
    metadata: Mapping[str, Any]
    depends_on: tuple[str, ...]

    @property
    def cdk_path(self) -> str | None:
        return self.metadata.get("aws:cdk:path")

    @property
    def label(self) -> str:
        """How messages name the resource: its logical id, and its construct path when the template has it."""
        return f"{self.logical_id} ({self.cdk_path})" if self.cdk_path else self.logical_id


@dataclass(frozen=True)
class Stack:
    name: str
    template_path: Path
    resources: Mapping[str, Resource]
    # S3 object key of an asset (e.g. `<hash>.zip`) -> where `cdk synth` left it on this machine
    assets: Mapping[str, Path]

    def of_type(self, resource_type: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.type == resource_type]


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function of the template, as the runtime would run it. `not_runnable` says why it cannot."""

    resource: Resource
    name: str  # friendly name: the package of its handler (`track_presence.handler.handler` -> `track_presence`)
    handler: str | None
    runtime: str | None
    memory_mb: int
    timeout_s: int
    code_dir: Path | None
    layer_dirs: tuple[Path, ...]
    not_runnable: str | None

    @property
    def logical_id(self) -> str:
        return self.resource.logical_id


def load_stack(assembly_dir: Path, stack_name: str | None = None) -> Stack:
    """The stack `stack_name` of the assembly, or its only stack."""
    assembly_dir = assembly_dir.resolve()  # the functions run in their code folders, not here
    manifest_path = assembly_dir / "manifest.json"
    if not manifest_path.is_file():
        raise LocalRuntimeError(
            f"No cloud assembly in {assembly_dir}: run `make synth` (or `npx cdk synth`) first, "
            "or point --assembly at the folder `cdk synth` wrote."
        )
    artifacts: dict[str, Any] = json.loads(manifest_path.read_text()).get("artifacts", {})
    stacks = {artifact_id: a for artifact_id, a in artifacts.items() if a.get("type") == STACK_ARTIFACT}
    if not stacks:
        raise LocalRuntimeError(
            f"The cloud assembly in {assembly_dir} has no stack at its top level "
            "(stacks inside CDK stages are not supported by the local runtime)"
        )
    if stack_name is None:
        if len(stacks) > 1:
            names = ", ".join(stacks)
            raise LocalRuntimeError(f"The assembly has {len(stacks)} stacks; choose one with --stack: {names}")
        stack_name = next(iter(stacks))
    if stack_name not in stacks:
        raise LocalRuntimeError(f"No stack {stack_name!r} in {assembly_dir}; its stacks are: {', '.join(stacks)}")
    artifact = stacks[stack_name]
    template_path = assembly_dir / artifact["properties"]["templateFile"]
    template = json.loads(template_path.read_text())
    return Stack(
        name=artifact.get("properties", {}).get("stackName", stack_name),
        template_path=template_path,
        resources=template_resources(template),
        assets=_assets(assembly_dir, artifacts, artifact.get("dependencies", [])),
    )


def template_resources(template: Mapping[str, Any]) -> dict[str, Resource]:
    """The resources of a CloudFormation template (as `cdk synth` writes it, or as CloudFormation returns it)."""
    resources = {}
    for logical_id, body in template.get("Resources", {}).items():
        depends_on = body.get("DependsOn", [])
        resources[logical_id] = Resource(
            logical_id=logical_id,
            type=body["Type"],
            properties=body.get("Properties", {}),
            metadata=body.get("Metadata", {}),
            depends_on=tuple([depends_on] if isinstance(depends_on, str) else depends_on),
        )
    return resources


def _assets(assembly_dir: Path, artifacts: Mapping[str, Any], dependencies: list[str]) -> dict[str, Path]:
    """Object key -> local path, from the asset manifests the stack depends on (`<Stack>.assets.json`)."""
    assets: dict[str, Path] = {}
    for artifact_id in dependencies:
        artifact = artifacts.get(artifact_id, {})
        if artifact.get("type") != ASSET_MANIFEST_ARTIFACT:
            continue
        manifest = json.loads((assembly_dir / artifact["properties"]["file"]).read_text())
        for asset_hash, asset in manifest.get("files", {}).items():
            source = assembly_dir / asset["source"]["path"]
            assets[f"{asset_hash}.zip"] = source
            for destination in asset.get("destinations", {}).values():
                assets[destination["objectKey"]] = source
    return assets


def find_functions(stack: Stack) -> list[FunctionSpec]:
    """Every AWS::Lambda::Function of the stack, runnable or with the reason it is not."""
    return [_function_spec(stack, resource) for resource in stack.of_type(FUNCTION)]


def _function_spec(stack: Stack, resource: Resource) -> FunctionSpec:
    properties = resource.properties
    handler = properties.get("Handler")
    runtime = properties.get("Runtime")
    code_dir, code_problem = _code_folder(stack, resource, properties.get("Code", {}), "Code")
    layer_dirs, layer_problem = _layer_folders(stack, properties.get("Layers", []))
    unsupported = sorted(
        set(properties) - _FUNCTION_PROPERTIES_EMULATED - _FUNCTION_PROPERTIES_WITHOUT_LOCAL_EFFECT
    )
    log_format = properties.get("LoggingConfig", {}).get("LogFormat", "Text")
    problems = [
        None if properties.get("PackageType", "Zip") == "Zip" else "a container image function",
        None if isinstance(runtime, str) and runtime.startswith("python3") else f"runtime {runtime}, not Python",
        None if isinstance(handler, str) and "." in handler else f"handler {handler!r} is not module.function",
        code_problem,
        layer_problem,
        f"properties not emulated: {', '.join(unsupported)}" if unsupported else None,
        None if log_format == "Text" else f"LoggingConfig.LogFormat {log_format} is not emulated",
    ]
    reasons = [problem for problem in problems if problem]
    return FunctionSpec(
        resource=resource,
        name=handler.replace("/", ".").split(".")[0] if isinstance(handler, str) else resource.logical_id,
        handler=handler,
        runtime=runtime,
        memory_mb=int(properties.get("MemorySize", DEFAULT_MEMORY_MB)),
        timeout_s=int(properties.get("Timeout", DEFAULT_TIMEOUT_S)),
        code_dir=code_dir,
        layer_dirs=tuple(layer_dirs),
        not_runnable="; ".join(reasons) or None,
    )


def _code_folder(
    stack: Stack, resource: Resource, code: Mapping[str, Any], property_name: str
) -> tuple[Path | None, str | None]:
    """The local folder of a function's code or a layer's content, or why there is none."""
    if "ZipFile" in code:
        return None, "inline code (ZipFile) is not supported"
    # Asset metadata is what `sam local` reads too; the S3 key through the asset manifest is the fallback.
    asset_path = resource.metadata.get("aws:asset:path")
    if asset_path and resource.metadata.get("aws:asset:property") == property_name:
        folder = stack.template_path.parent / asset_path
    else:
        key = code.get("S3Key")
        if not isinstance(key, str) or key not in stack.assets:
            return None, f"its {property_name} is not an asset of this assembly"
        folder = stack.assets[key]
    if not folder.is_dir():
        return None, f"its {property_name} asset {folder.name} is not a folder"
    return folder, None


def _layer_folders(stack: Stack, layers: list[Any]) -> tuple[list[Path], str | None]:
    folders = []
    for layer in layers:
        target = stack.resources.get(layer.get("Ref", "")) if isinstance(layer, dict) else None
        if target is None or target.type != LAYER:
            return [], f"layer {json.dumps(layer)} is not a layer of this stack"
        folder, problem = _code_folder(stack, target, target.properties.get("Content", {}), "Content")
        if folder is None:
            return [], f"layer {target.logical_id}: {problem}"
        folders.append(folder)
    return folders, None


def select_function(functions: list[FunctionSpec], name: str) -> FunctionSpec:
    """The function named by its friendly name, logical id or CDK path (with or without `/Resource`)."""
    matches = [
        spec
        for spec in functions
        if name in (spec.name, spec.logical_id, spec.resource.cdk_path)
        or (spec.resource.cdk_path or "").removesuffix("/Resource") == name.rstrip("/")
    ]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(
        f"{spec.name} ({spec.logical_id})" + (f", not runnable: {spec.not_runnable}" if spec.not_runnable else "")
        for spec in functions
    )
    if not matches:
        raise LocalRuntimeError(f"No function {name!r}. The functions are: {listing}")
    raise LocalRuntimeError(f"{name!r} names {len(matches)} functions; use a logical id: {listing}")
