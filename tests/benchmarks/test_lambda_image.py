"""Bytecode as on Lambda: the runtime (stdlib, boto3 & deps) from .pyc; the code asset and the layer, which
ship none, compiled from source at every cold start."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.aws_stub import AwsStub
from benchmarks.candidates import all_candidates
from benchmarks.harness import run_child
from benchmarks.lambda_image import LambdaImage, build_image, strip_bytecode
from benchmarks.report import PRESENCE

# `python -v` names the file each module's code comes from: a .pyc, or the .py it compiled.
CODE_OBJECT = re.compile(r"^# code object from '?(.+?)'?$", re.MULTILINE)


def code_sources(stderr: str, image: LambdaImage) -> dict[str, set[str]]:
    """The files code came from, by place: code (the asset), layer, or runtime (stdlib, boto3 & deps)."""
    places: dict[str, set[str]] = {"code": set(), "layer": set(), "runtime": set()}
    for path in CODE_OBJECT.findall(stderr):
        if path.startswith(str(image.layer)):
            places["layer"].add(path)
        elif path.startswith(str(image.runtime_packages)):
            places["runtime"].add(path)
        elif path.startswith(str(image.root)):
            places["code"].add(path)
        else:
            places["runtime"].add(path)
    return places


def test_lambda_mode_compiles_code_and_layer_only(tmp_path: Path) -> None:
    candidates = all_candidates(batch_size=1)
    presence = next(candidate for candidate in candidates if candidate.name == PRESENCE)
    with AwsStub() as aws:
        image = build_image(tmp_path, [presence])
        run_child(presence, image, aws, warm_invocations=0, first_event_records=1, write_bytecode=True)  # the warm-up round
        strip_bytecode(image)
        places = code_sources(run_child(presence, image, aws, warm_invocations=0, first_event_records=1, python_options=("-v",)).stderr, image)
    assert places["code"] and all(path.endswith(".py") for path in places["code"])
    assert places["layer"] and all(path.endswith(".py") for path in places["layer"])
    assert any("/botocore/" in path for path in places["runtime"])
    assert all(path.endswith(".pyc") for path in places["runtime"])
    # read-only on Lambda: nothing written back into the code or the layer
    assert not list((tmp_path / "task").rglob("__pycache__")) and not list((tmp_path / "opt").rglob("__pycache__"))
