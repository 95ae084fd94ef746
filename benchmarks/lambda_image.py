"""The files a function sees on Lambda, rebuilt in a scratch folder, for each variant measured:

- /var/task: the packages of the code asset, built as the stack builds them (stacks/lambda_packaging.py):
  with their checked-hash bytecode (`shipped`, `traced`) or without (`source`);
- /opt/python: the dependency layer, the distributions functions/requirements.txt lists, installed as the
  stack installs them but for this machine (the layer's own wheels are for arm64), with its unchecked-hash
  bytecode or without;
- the runtime: boto3 and its dependencies, copied from this venv and compiled, as Lambda's runtime ships them
  precompiled; the interpreter's standard library, precompiled too.

The bytecode is compiled by, and the functions run on, an interpreter of the runtime's Python version (a .pyc
serves only that version). Nothing is compiled while measuring (PYTHONDONTWRITEBYTECODE=1), as Lambda's code
folders are read-only: what has no bytecode is compiled from source at every cold start.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.candidates import FUNCTIONS_DIR, REPO_ROOT, Candidate
from local_runtime.lambda_runtime import runtime_package_paths
from stacks.lambda_packaging import (
    CODE_BYTECODE,
    CODE_ROOT,
    LAYER_BYTECODE,
    LAYER_ROOT,
    Interpreter,
    PackagingError,
    compile_bytecode,
    copy_packages,
    install_layer_packages,
    lambda_interpreter,
    layer_fingerprint,
)

Variant = Literal["shipped", "source", "traced"]
VARIANTS: dict[Variant, str] = {
    "shipped": (
        "as deployed: the code and the layer with the bytecode the build ships (checked-hash for the code, "
        "unchecked-hash for the layer), the runtime's boto3 precompiled"
    ),
    "source": (
        "without the shipped bytecode: the code and the layer compiled from source at every cold start (Lambda's "
        "code folders are read-only), the runtime's boto3 precompiled"
    ),
    "traced": (
        "as deployed with active tracing (deviceBackend.tracing): the trace header Lambda gives each invocation "
        "says Sampled=1 (Sampled=0 otherwise); the functions record no trace themselves"
    ),
}
BUILD_DIR = REPO_ROOT / "build"


def built_as(variant: Variant) -> str:
    """The files a variant runs: active tracing changes how Lambda invokes the function, not its files."""
    return "source" if variant == "source" else "shipped"


@dataclass(frozen=True)
class LambdaImage:
    root: Path
    python: Interpreter
    runtime_packages: Path

    def task_root(self, candidate: Candidate, variant: Variant) -> Path:
        return self.root / built_as(variant) / "task" / candidate.name

    def layer(self, variant: Variant) -> Path:
        return self.root / built_as(variant) / "opt" / "python"

    def layers(self, candidate: Candidate, variant: Variant) -> list[Path]:
        return [self.layer(variant)] if candidate.uses_layer else []


def build_image(
    root: Path,
    candidates: list[Candidate],
    python: Interpreter | None = None,
    variants: tuple[Variant, ...] = ("shipped",),
) -> LambdaImage:
    """The files of `variants`, for `python` (by default the runtime's, as the build finds it)."""
    python = python or lambda_interpreter()
    image = LambdaImage(root, python, root / "runtime")
    copy_runtime_packages(python, image.runtime_packages)
    layer = layer_packages(FUNCTIONS_DIR / "requirements.txt")
    for variant in sorted({built_as(variant) for variant in variants}):
        for candidate in candidates:
            task_root = image.task_root(candidate, variant)
            copy_packages(candidate.source_root, candidate.packages, task_root)
            if variant == "shipped":
                compile_bytecode(python, task_root, CODE_ROOT, CODE_BYTECODE)
        shutil.copytree(layer, image.layer(variant), ignore=shutil.ignore_patterns("__pycache__"))
        if variant == "shipped":
            compile_bytecode(python, image.layer(variant), LAYER_ROOT, LAYER_BYTECODE)
    return image


def copy_runtime_packages(python: Interpreter, target: Path) -> None:
    """boto3 and its dependencies as installed here (pure Python), compiled by `python`."""
    target.mkdir(parents=True)
    for source in runtime_package_paths():
        if source.is_dir():
            shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target / source.name)
    result = subprocess.run([str(python.path), "-I", "-m", "compileall", "-q", str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(f"Compiling the runtime's packages failed:\n{result.stdout}{result.stderr}")


def layer_packages(requirements: Path) -> Path:
    """The layer's packages installed as the stack installs them (pip, --no-deps, the runtime's Python
    version), but for this machine's platform, so that its compiled ones (cryptography, cffi) load here. Kept
    in build/, by what they are installed from, so pip runs once."""
    machine_platform = f"manylinux2014_{platform.machine()}"
    installed = BUILD_DIR / f"lambda-layer-{layer_fingerprint(requirements, machine_platform)[:16]}"
    if not installed.is_dir():
        partial = installed.with_name(installed.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        install_layer_packages(requirements, partial, machine_platform)
        partial.rename(installed)
    return installed
