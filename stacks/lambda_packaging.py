"""How the function code and the dependency layer are built for Lambda on this machine: no Docker, and with
the bytecode Lambda would otherwise compile at every cold start (its code folders are read-only, so nothing it
compiles is kept). Plain Python, no CDK: the stack's bundling and the benchmarks build with it alike.

A .pyc serves only the Python minor version that wrote it, so the bytecode is compiled by an interpreter of
the runtime's own version, found by `find_interpreter()`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Iterable, Mapping

# The one setting: Lambda's Python runtime (python3.13), the wheels the layer gets and the interpreter that
# compiles the bytecode. Not the newest runtime (python3.14): no Python 3.14 interpreter can be installed here
# from the package registries the build uses (README, "Packaging"); with one, set "3.14".
PYTHON_VERSION = "3.13"
RUNTIME_NAME = f"python{PYTHON_VERSION}"
# pip's name for Lambda's arm64 platform, to fetch wheels for it rather than for this machine.
LAMBDA_PLATFORM = "manylinux2014_aarch64"
INTERPRETER_VARIABLE = "LAMBDA_PYTHON"
# Where Lambda puts the code and the layer: the file names compiled into the bytecode, the same on every
# machine, so that a build is byte for byte the same wherever and whenever it runs.
CODE_ROOT = "/var/task"
LAYER_ROOT = "/opt/python"
# Hash-based .pyc, because Lambda's zip and unzip do not keep the sources' modification times that a
# timestamp .pyc is checked against. The code's are checked: Python hashes each module's source before using
# its .pyc, so a module edited where it is deployed (the Lambda console's editor) runs as edited rather than
# as the stale .pyc beside it. A layer version cannot be edited, so its .pyc are used unchecked.
CODE_BYTECODE = "checked-hash"
LAYER_BYTECODE = "unchecked-hash"

_VERSION = re.compile(r"cpython (\d+)\.(\d+)\.(\d+)")


class PackagingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: str  # its full version, e.g. 3.13.0


def find_interpreter(environ: Mapping[str, str] | None = None) -> Interpreter:
    """A CPython of the runtime's version: $LAMBDA_PYTHON if set (it must be one), else `python3.13` on
    PATH, else the newest 3.13 that pyenv installed. Raises PackagingError naming what it tried."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(INTERPRETER_VARIABLE)
    if explicit:
        interpreter = _probe(Path(explicit))
        if interpreter is None:
            raise PackagingError(
                f"{INTERPRETER_VARIABLE}={explicit} is not a CPython {PYTHON_VERSION} interpreter, and the functions "
                f"run on Lambda's {RUNTIME_NAME}"
            )
        return interpreter
    tried = _candidates(environ)
    for candidate in tried:
        interpreter = _probe(candidate)
        if interpreter is not None:
            return interpreter
    raise PackagingError(
        f"No Python {PYTHON_VERSION} interpreter found to compile the functions' bytecode for Lambda's "
        f"{RUNTIME_NAME} (tried: {', '.join(map(str, tried)) or f'python{PYTHON_VERSION} on PATH, pyenv'}). "
        f"Install one (e.g. `pyenv install {PYTHON_VERSION}`) or point {INTERPRETER_VARIABLE} at one"
    )


@cache
def lambda_interpreter() -> Interpreter:
    """find_interpreter() for this process's environment, looked for once."""
    return find_interpreter()


def package_files(source_root: Path, packages: Iterable[str]) -> list[Path]:
    """The files of the packages of `source_root`, relative to it, but the bytecode this machine's Python
    wrote there."""
    return sorted(
        path.relative_to(source_root)
        for package in packages
        for path in (source_root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def copy_packages(source_root: Path, packages: Iterable[str], target: Path) -> None:
    for file in package_files(source_root, packages):
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_root / file, target / file)


def code_fingerprint(source_root: Path, packages: Iterable[str]) -> str:
    """What a function's code asset is built from: its files and how they are compiled."""
    digest = hashlib.sha256(f"{PYTHON_VERSION} {CODE_BYTECODE}".encode())
    for file in package_files(source_root, packages):
        digest.update(f"\0{file}\0".encode() + (source_root / file).read_bytes())
    return digest.hexdigest()


def layer_fingerprint(requirements: Path, platform: str = LAMBDA_PLATFORM) -> str:
    """What the layer is built from: the requirements, the platform and how they are compiled."""
    build = f"{PYTHON_VERSION} {platform} {LAYER_BYTECODE}\0"
    return hashlib.sha256(build.encode() + requirements.read_bytes()).hexdigest()


def install_layer_packages(requirements: Path, target: Path, platform: str = LAMBDA_PLATFORM) -> None:
    """Exactly the distributions `requirements` lists (--no-deps: what the runtime ships, boto3 and its
    dependencies, must not be shadowed by a copy), as wheels for `platform` and the runtime's Python."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", "--no-deps",
        "--only-binary=:all:", "--platform", platform, "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--requirement", str(requirements), "--target", str(target),
    ]  # fmt: skip
    _run(command, "Installing the dependency layer's packages")


def compile_bytecode(interpreter: Interpreter, folder: Path, deployed_at: str, invalidation_mode: str) -> None:
    """Writes the __pycache__ of every module under `folder`, as the runtime's Python imports them (no -O),
    with `deployed_at` in place of `folder` in the file names they record."""
    command = [
        str(interpreter.path), "-I", "-m", "compileall", "-q", "-o", "0", "--invalidation-mode", invalidation_mode,
        "-s", str(folder), "-p", deployed_at, str(folder),
    ]  # fmt: skip
    _run(command, f"Compiling {folder} with Python {interpreter.version}")


def build_function_code(interpreter: Interpreter, source_root: Path, packages: Iterable[str], output: Path) -> None:
    """A function's code asset: its packages and their checked bytecode."""
    copy_packages(source_root, packages, output)
    compile_bytecode(interpreter, output, CODE_ROOT, CODE_BYTECODE)


def build_layer(interpreter: Interpreter, requirements: Path, output: Path) -> None:
    """The dependency layer's asset: python/ (Lambda's /opt/python), its packages and their bytecode."""
    site = output / "python"
    install_layer_packages(requirements, site)
    compile_bytecode(interpreter, site, LAYER_ROOT, LAYER_BYTECODE)


def _candidates(environ: Mapping[str, str]) -> list[Path]:
    found = []
    on_path = shutil.which(f"python{PYTHON_VERSION}", path=environ.get("PATH", os.defpath))
    if on_path:
        found.append(Path(on_path))
    pyenv_root = Path(environ.get("PYENV_ROOT") or Path(environ.get("HOME", "~")).expanduser() / ".pyenv")
    installed = pyenv_root.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}")
    found.extend(sorted(installed, key=_patch_number, reverse=True))
    return found


def _patch_number(executable: Path) -> int:
    patch = executable.parents[1].name.removeprefix(f"{PYTHON_VERSION}.")
    return int(patch) if patch.isdigit() else -1  # a pre-release (3.13.0rc1, say) comes last


def _probe(executable: Path) -> Interpreter | None:
    """The interpreter at `executable` if it runs and is a CPython of the runtime's version (a pyenv shim,
    for one, runs but may fail: the version it stands for is not selected)."""
    code = "import sys; print(sys.implementation.name, '.'.join(map(str, sys.version_info[:3])))"
    try:
        result = subprocess.run([str(executable), "-I", "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.fullmatch(result.stdout.strip()) if result.returncode == 0 else None
    if match is None or f"{match[1]}.{match[2]}" != PYTHON_VERSION:
        return None
    return Interpreter(executable, ".".join(match.groups()))


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(f"{what} failed ({' '.join(command)}):\n{result.stdout}{result.stderr}")
