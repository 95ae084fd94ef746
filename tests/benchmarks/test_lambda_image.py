"""Bytecode as on Lambda, on the runtime's Python: the runtime (stdlib, boto3 & deps) from .pyc; the code
asset and the layer from the .pyc the build ships (`shipped`), or compiled from source at every cold start
when they ship none (`source`), and nothing ever written back into them (Lambda's code folders are read-only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.aws_stub import AwsStub
from benchmarks.candidates import all_candidates
from benchmarks.harness import run_child
from benchmarks.lambda_image import LambdaImage, Variant, build_image
from benchmarks.report import PRESENCE
from stacks.lambda_packaging import lambda_interpreter

# `python -v` names the file each module's code comes from: a .pyc, or the .py it compiled.
CODE_OBJECT = re.compile(r"^# code object from '?(.+?)'?$", re.MULTILINE)


def code_sources(stderr: str, image: LambdaImage, variant: Variant) -> dict[str, set[str]]:
    """The files code came from, by place: code (the asset), layer, or runtime (stdlib, boto3 & deps)."""
    places: dict[str, set[str]] = {"code": set(), "layer": set(), "runtime": set()}
    for path in CODE_OBJECT.findall(stderr):
        if path.startswith(str(image.layer(variant))):
            places["layer"].add(path)
        elif path.startswith(str(image.runtime_packages)):
            places["runtime"].add(path)
        elif path.startswith(str(image.root)):
            places["code"].add(path)
        else:
            places["runtime"].add(path)
    return places


def bytecode_files(image: LambdaImage) -> set[Path]:
    return {path for path in image.root.rglob("*.pyc") if not path.is_relative_to(image.runtime_packages)}


@pytest.mark.parametrize(("variant", "code_from"), [("shipped", ".pyc"), ("source", ".py")])
def test_code_and_layer_run_from_the_shipped_bytecode_or_compile_from_source(
    tmp_path: Path, variant: Variant, code_from: str
) -> None:
    presence = next(candidate for candidate in all_candidates(batch_size=1) if candidate.name == PRESENCE)
    with AwsStub() as aws:
        image = build_image(tmp_path, [presence], variants=(variant,))
        shipped = bytecode_files(image)
        stderr = run_child(
            presence, image, aws, variant=variant, warm_invocations=0, first_event_records=1, python_options=("-v",)
        ).stderr
    places = code_sources(stderr, image, variant)
    assert image.python == lambda_interpreter() and image.python.version.startswith("3.13.")
    assert places["code"] and all(path.endswith(code_from) for path in places["code"])
    assert places["layer"] and all(path.endswith(code_from) for path in places["layer"])
    assert any("/botocore/" in path for path in places["runtime"])
    assert all(path.endswith(".pyc") for path in places["runtime"])
    assert bool(shipped) == (variant == "shipped")
    assert bytecode_files(image) == shipped  # read-only on Lambda: nothing written into the code or the layer
