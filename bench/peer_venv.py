"""The peers' own virtual environment, bench/.peer-venv: the provider SDKs we compare against
are never tickmesh dependencies. Created on first use from PyPI, then reused (and topped up
when PEER_PACKAGES changes). cryptofeed 2.4.1 is the newest that installs on Python 3.11; pip
builds it and its order-book C extension (order_book) from source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEER_VENV = Path(__file__).resolve().parent / ".peer-venv"
PEER_PACKAGES = ("alpaca-py", "msgpack", "cryptofeed==2.4.1")
_STAMP = PEER_VENV / ".installed"


def peer_python() -> Path:
    """The peer venv's interpreter, creating the venv or installing what it lacks first."""
    python = PEER_VENV / "bin" / "python"
    wanted = " ".join(PEER_PACKAGES)
    if not _STAMP.exists() or _STAMP.read_text() != wanted:
        print(f"preparing the peers' venv {PEER_VENV} (once): pip install {wanted}", flush=True)
        if not _STAMP.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *PEER_PACKAGES], check=True)
        _STAMP.write_text(wanted)
    return python


def installed_version(python: Path, distribution: str) -> str:
    """The version of a distribution installed in the venv of `python`."""
    code = f"from importlib.metadata import version; print(version({distribution!r}))"
    result = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip()
