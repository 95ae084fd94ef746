"""Layer packages built for Lambda's platform (arm64 Linux), swapped for this machine's build of the same
version, so that a function whose layer holds compiled code (cryptography, say) runs here as on Lambda.

The layer is built by pip for Lambda's platform; its pure-Python packages run anywhere, but a compiled one
only on that platform. For each distribution in a layer whose wheel is for another machine, the same
distribution at the same version must be installed in this environment (`make install` installs the layer's
requirements too); its top-level packages are linked into an overlay folder that goes before the layer on
the function's path. A missing or different version is refused: running other code than the layer's would
not be a test of the app.
"""

from __future__ import annotations

import platform
import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from local_runtime.errors import NotEmulated

_DIST_INFO = re.compile(r"(?P<name>.+)-(?P<version>[^-]+)\.dist-info")


def foreign_distributions(site: Path) -> list[tuple[str, str]]:
    """(name, version) of the distributions in `site` whose wheels are built for another machine."""
    machine = platform.machine()
    found = []
    for wheel in sorted(site.glob("*.dist-info/WHEEL")):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
        if platforms != {"any"} and not any(machine in tag_platform for tag_platform in platforms):
            match = _DIST_INFO.fullmatch(wheel.parent.name)
            assert match is not None, wheel
            found.append((match["name"], match["version"]))
    return found


def link_native_builds(sites: list[Path], overlay: Path) -> list[str]:
    """Links this machine's build of every foreign distribution in `sites` into `overlay`; returns them as
    "name version" for the runtime to say so."""
    linked = []
    for site in sites:
        for name, version in foreign_distributions(site):
            try:
                local = distribution(name)
            except PackageNotFoundError:
                local = None
            if local is None or local.version != version:
                have = f"version {local.version}" if local else "nothing"
                raise NotEmulated(
                    f"The layer's {name} {version} is built for Lambda's platform, and this environment has {have} "
                    f"of it to run in its place (run `make install`)"
                )
            overlay.mkdir(parents=True, exist_ok=True)
            for top in sorted({Path(str(file)).parts[0] for file in local.files or []}):
                source = Path(str(local.locate_file(top)))
                if top != ".." and not top.endswith(".dist-info") and source.exists() and not (overlay / top).exists():
                    (overlay / top).symlink_to(source)
            linked.append(f"{name} {version}")
    return linked
