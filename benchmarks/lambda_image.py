"""The files a function sees on Lambda, rebuilt in a scratch folder: its code, the layer and the runtime.

- /var/task: a copy of the packages of the code asset, without __pycache__ (the asset excludes it);
- /opt/python: a copy of the dependency layer, the distributions functions/requirements.txt lists, without
  bytecode (the layer is built with `pip install --no-deps --no-compile`);
- the runtime: stdlib, boto3 and its dependencies, from this venv, with their .pyc files (Lambda's runtime ships
  boto3 precompiled).

Lambda's file system is read-only, so the code and layer it gets without bytecode are compiled again at every
cold start. The copies let the benchmark reproduce that (or not: `cached`) without touching functions/ or
the venv.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib.metadata import Distribution, distribution
from pathlib import Path
from typing import Literal

from benchmarks.candidates import FUNCTIONS_DIR, Candidate
from local_runtime.lambda_runtime import link_runtime_packages

BytecodeMode = Literal["lambda", "cached"]
BYTECODE_MODES: dict[BytecodeMode, str] = {
    "lambda": (
        "as deployed: stdlib, boto3 & deps from .pyc caches (written by the warm-up round, which allows bytecode "
        "writing); function code and layer compiled from source at every cold start (the asset excludes "
        "__pycache__, the layer is built with pip --no-compile, Lambda's file system is read-only)"
    ),
    "cached": (
        "everything from .pyc caches (written by the warm-up round, which allows bytecode writing): as if the "
        "asset and the layer shipped bytecode for the runtime's Python"
    ),
}
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class LambdaImage:
    root: Path
    layer: Path
    runtime_packages: Path

    def task_root(self, candidate: Candidate) -> Path:
        return self.root / "task" / candidate.name

    def layers(self, candidate: Candidate) -> list[Path]:
        return [self.layer] if candidate.uses_layer else []


def build_image(root: Path, candidates: list[Candidate]) -> LambdaImage:
    # The runtime's packages are linked, not copied: their .pyc caches are the venv's, as Lambda's are precompiled.
    image = LambdaImage(root, root / "opt" / "python", link_runtime_packages(root / "runtime"))
    for candidate in candidates:
        for package in candidate.packages:
            shutil.copytree(
                candidate.source_root / package,
                image.task_root(candidate) / package,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
    for dist in layer_distributions(FUNCTIONS_DIR / "requirements.txt"):
        copy_distribution(dist, image.layer)
    return image


def layer_distributions(requirements: Path) -> list[Distribution]:
    """The installed distributions that the layer holds: exactly the listed ones (pip --no-deps)."""
    names = [_requirement_name(line) for line in requirements.read_text().splitlines()]
    return [distribution(name) for name in names if name]


def copy_distribution(dist: Distribution, target: Path) -> None:
    for file in dist.files or []:
        # Scripts installed outside site-packages are not in a layer; nor is bytecode (pip --no-compile).
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue
        destination = target / file
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(str(dist.locate_file(file))), destination)


def strip_bytecode(image: LambdaImage) -> None:
    """Removes the .pyc files written into the code and layer copies, as they do not exist on Lambda (and not
    those of the runtime's packages, which Lambda ships)."""
    for copies in (image.root / "task", image.root / "opt"):
        for cache in sorted(copies.rglob("__pycache__")):
            shutil.rmtree(cache)


def _requirement_name(line: str) -> str:
    match = _REQUIREMENT_NAME.match(line.partition("#")[0])
    return match.group(1) if match else ""
