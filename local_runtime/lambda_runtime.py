"""What Lambda's Python runtime itself provides to a function, rebuilt from this machine's packages.

Shared by the local runtime's workers and the benchmarks; standard library only, so importing it is cheap.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from local_runtime.errors import LocalRuntimeError

# The packages of Lambda's Python runtime (/var/runtime): boto3 and what it needs. Nothing else installed on
# this machine is importable by a function.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def runtime_package_paths() -> list[Path]:
    """Where the packages of Lambda's Python runtime are installed here: a package's folder, a module's
    (six's) file."""
    paths = []
    for name in LAMBDA_RUNTIME_PACKAGES:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise LocalRuntimeError(
                f"{name} is not installed in this environment; Lambda's runtime has it (run `make install`)"
            )
        paths.append(Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin))
    return paths


def link_runtime_packages(directory: Path) -> Path:
    """A folder holding links to exactly the packages of Lambda's Python runtime, as installed here."""
    directory.mkdir(parents=True)
    for source in runtime_package_paths():
        (directory / source.name).symlink_to(source)
    return directory
