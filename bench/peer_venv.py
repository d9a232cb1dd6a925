"""The peers' own virtual environment, bench/.peer-venv: the provider SDKs we compare against
are never tickmesh dependencies. Created on first use from PyPI, then reused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEER_VENV = Path(__file__).resolve().parent / ".peer-venv"
PEER_PACKAGES = ("alpaca-py", "msgpack")
_STAMP = PEER_VENV / ".installed"


def peer_python() -> Path:
    """The peer venv's interpreter, creating the venv first if it is not complete."""
    python = PEER_VENV / "bin" / "python"
    if not _STAMP.exists():
        print(f"creating the peers' venv {PEER_VENV} (once): pip install {' '.join(PEER_PACKAGES)}",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *PEER_PACKAGES], check=True)
        _STAMP.touch()
    return python


def installed_version(python: Path, distribution: str) -> str:
    """The version of a distribution installed in the venv of `python`."""
    code = f"from importlib.metadata import version; print(version({distribution!r}))"
    result = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip()
