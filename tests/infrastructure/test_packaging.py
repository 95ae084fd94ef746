"""The code and the layer ship bytecode of the runtime's Python that Lambda uses from its read-only folders,
the same bytes at every build; synth says what to do when it has no interpreter to compile it with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import STACK_NAME
from local_runtime.lambda_runtime import LAMBDA_RUNTIME_PACKAGES
from stacks.function_code import FUNCTIONS_DIR
from stacks.lambda_packaging import (
    INTERPRETER_VARIABLE,
    PYTHON_VERSION,
    PackagingError,
    build_function_code,
    find_interpreter,
    lambda_interpreter,
)
from tests.conftest import ROOT
from tests.infrastructure.conftest import resources

CACHE_TAG = "cpython-" + PYTHON_VERSION.replace(".", "")
# The flags word of a .pyc header (PEP 552): bit 0, hash-based; bit 1, check the source's hash.
CHECKED_HASH, UNCHECKED_HASH = 0b11, 0b01


def asset_folders(cloud_assembly: Path, template: dict, resource_type: str) -> set[Path]:
    return {
        cloud_assembly / r["Metadata"]["aws:asset:path"]
        for r in resources(template, resource_type).values()
        if resource_type != "AWS::Lambda::Function" or r["Properties"]["Runtime"].startswith("python")
    }


def runtime_magic() -> bytes:
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    return bytes.fromhex(subprocess.check_output([str(lambda_interpreter().path), "-I", "-c", code], text=True))


def bytecode_of(folder: Path) -> dict[Path, tuple[bytes, int]]:
    """Each module's .pyc for the runtime's Python: its magic number and flags, by source."""
    found = {}
    for source in folder.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc"
        header = pyc.read_bytes()[:8] if pyc.is_file() else b""
        found[source] = (header[:4], int.from_bytes(header[4:8], "little"))
    return found


def test_every_module_of_every_function_ships_checked_bytecode_of_the_runtimes_python(cloud_assembly, template):
    folders = asset_folders(cloud_assembly, template, "AWS::Lambda::Function")
    magic = runtime_magic()
    assert len(folders) == 7
    for folder in folders:
        modules = bytecode_of(folder)
        assert len(modules) > 5 and set(modules.values()) == {(magic, CHECKED_HASH)}, folder
        # Only the runtime's: nothing this machine's Python (or any other) wrote.
        assert {pyc.name.split(".")[-2] for pyc in folder.rglob("*.pyc")} == {CACHE_TAG}, folder


def test_every_module_of_the_layer_ships_unchecked_bytecode_of_the_runtimes_python(cloud_assembly, template):
    [layer] = asset_folders(cloud_assembly, template, "AWS::Lambda::LayerVersion")
    modules = bytecode_of(layer / "python")
    assert len(modules) > 100 and set(modules.values()) == {(runtime_magic(), UNCHECKED_HASH)}


def test_nothing_shadows_the_shipped_bytecode(cloud_assembly, template):
    """Lambda's path: the code, the layer, then the runtime's packages (precompiled). A package in two of them
    is imported from the first only; the layer has none of the runtime's (pip --no-deps) nor any folder
    searched before its own (python/lib/python3.13/site-packages)."""
    [layer] = asset_folders(cloud_assembly, template, "AWS::Lambda::LayerVersion")
    layer_packages = {path.name.removesuffix(".py") for path in (layer / "python").iterdir()}
    assert "aws_lambda_powertools" in layer_packages and not layer_packages & set(LAMBDA_RUNTIME_PACKAGES)
    assert not (layer / "python" / "lib").exists()
    for folder in asset_folders(cloud_assembly, template, "AWS::Lambda::Function"):
        assert not {path.name for path in folder.iterdir()} & (layer_packages | set(LAMBDA_RUNTIME_PACKAGES))


def test_a_build_gives_the_same_bytes_wherever_it_runs_naming_lambdas_paths(tmp_path):
    packages = ("track_presence", "event_processing")
    builds = [tmp_path / "one", tmp_path / "elsewhere" / "two"]
    for output in builds:
        build_function_code(lambda_interpreter(), FUNCTIONS_DIR, packages, output)
    contents = [{p.relative_to(b): p.read_bytes() for p in sorted(b.rglob("*")) if p.is_file()} for b in builds]
    assert contents[0] == contents[1] and any(name.suffix == ".pyc" for name in contents[0])
    recorded = "import marshal, sys; sys.stdout.write(marshal.loads(open(sys.argv[1], 'rb').read()[16:]).co_filename)"
    pyc = builds[1] / "track_presence" / "__pycache__" / f"logic.{CACHE_TAG}.pyc"
    filename = subprocess.check_output([str(lambda_interpreter().path), "-I", "-c", recorded, str(pyc)], text=True)
    assert filename == "/var/task/track_presence/logic.py"


def test_this_machines_python_ignores_the_runtimes_bytecode_and_runs_the_source(cloud_assembly, template):
    """The local runtime runs the assets on this machine's Python (3.11 here): another version's .pyc are
    not its cache, so it compiles the source and writes nothing (-B, as the local runtime runs them)."""
    package = "track_presence"  # its logic needs nothing from the layer
    [folder] = [f for f in asset_folders(cloud_assembly, template, "AWS::Lambda::Function") if (f / package).is_dir()]
    before = sorted(folder.rglob("*.pyc"))
    imported = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-v", "-c", f"import sys; sys.path[:0] = [{str(folder)!r}]; import {package}.logic"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert f"# code object from {folder}/{package}/logic.py" in imported.stderr
    assert sorted(folder.rglob("*.pyc")) == before


def fake_python(path: Path, exit_code: int) -> Path:
    """An executable that fails as a pyenv shim does for a version that is not selected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'pyenv: python{PYTHON_VERSION}: command not found' >&2\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


def test_the_interpreter_is_the_explicit_one_else_on_path_else_the_newest_pyenv_patch(tmp_path):
    real = lambda_interpreter().path
    pyenv = tmp_path / "pyenv"
    for patch in ("0", "10", "9"):  # 10 is newer than 9
        link = pyenv / "versions" / f"{PYTHON_VERSION}.{patch}" / "bin" / f"python{PYTHON_VERSION}"
        link.parent.mkdir(parents=True)
        link.symlink_to(real)
    shim = fake_python(tmp_path / "shims" / f"python{PYTHON_VERSION}", 127)
    environ = {"PATH": str(shim.parent), "PYENV_ROOT": str(pyenv)}
    assert find_interpreter(environ).path == pyenv / "versions" / f"{PYTHON_VERSION}.10" / "bin" / f"python{PYTHON_VERSION}"
    assert find_interpreter({**environ, "PATH": str(real.parent)}).path == real.parent / f"python{PYTHON_VERSION}"
    assert find_interpreter({**environ, INTERPRETER_VARIABLE: str(real)}).path == real


def test_an_explicit_interpreter_of_another_version_is_refused(tmp_path):
    with pytest.raises(PackagingError, match=f"{INTERPRETER_VARIABLE}=.* is not a CPython {PYTHON_VERSION} interpreter"):
        find_interpreter({INTERPRETER_VARIABLE: sys.executable, "PATH": ""})


def test_without_an_interpreter_the_error_says_what_was_tried_and_what_to_do(tmp_path):
    shim = fake_python(tmp_path / "shims" / f"python{PYTHON_VERSION}", 127)
    with pytest.raises(PackagingError) as error:
        find_interpreter({"PATH": str(shim.parent), "PYENV_ROOT": str(tmp_path / "no-pyenv")})
    assert f"No Python {PYTHON_VERSION} interpreter found" in str(error.value)
    assert f"tried: {shim}" in str(error.value)
    assert f"pyenv install {PYTHON_VERSION}" in str(error.value) and INTERPRETER_VARIABLE in str(error.value)


def test_python_app_py_fails_in_one_line_when_it_cannot_compile_the_bytecode(tmp_path):
    environment = {**os.environ, "CDK_OUTDIR": str(tmp_path), INTERPRETER_VARIABLE: str(tmp_path / "python3.13")}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Cannot build the functions for Lambda: {INTERPRETER_VARIABLE}={tmp_path / 'python3.13'} is not a CPython "
        "3.13 interpreter, and the functions run on Lambda's python3.13"
    )
    assert not (tmp_path / f"{STACK_NAME}.template.json").exists()


def test_bundling_skipped_needs_no_interpreter(tmp_path):
    """`cdk ls`, and synths that skip bundling, build no asset: nothing to compile."""
    code = (
        "import json, sys; from app import build_app; "
        "build_app(context={'aws:cdk:bundling-stacks': []}, outdir=sys.argv[1]).synth()"
    )
    environment = {**os.environ, INTERPRETER_VARIABLE: str(tmp_path / "python3.13")}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / f"{STACK_NAME}.template.json").read_text())["Resources"]
