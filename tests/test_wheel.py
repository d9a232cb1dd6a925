"""tickmesh as a user installs it: the wheel, built from this tree and installed non-editable
into a fresh venv, used from a directory that is not the checkout. The demo runs with no
argument, `check`, `consume` of a packaged example and a Subscriber given no endpoint work,
site-packages holds `tickmesh` and no other name of ours, and neither the Supervisor process
manager's `supervisor` package nor a project's own `handlers/` and `bus/` packages change
anything.

The fresh venv downloads nothing: a .pth file in it names this venv's site-packages, where the
dependencies are (this venv's tickmesh is an editable install: a finder that the .pth does not
run, so the wheel's tickmesh is the one imported; a test checks it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import zmq

from tests.conftest import REPO
from tests.supervised import alive
from tests.waiting import wait_until

# fixed ports (the demo's, the metrics port): never two such tests at once (pytest -n)
pytestmark = pytest.mark.xdist_group("fixed_ports")

OUR_NAMES = ("bus", "runtime", "handlers", "consumers", "supervisor", "examples", "config")
FIRST_EVENTS_WITHIN = 15.0  # seconds from `tickmesh run` to events on the bus
PYPI_TIMEOUT = "5"  # seconds pip waits on the registry before the stand-in supervisor is used
NO_ENDPOINT = """from tickmesh.bus import Subscriber
with Subscriber(patterns=["trade"]) as trades:  # the bus of the system in TICKMESH_RUN_DIR
    print(type(trades.recv(timeout=10)).__name__)
"""


@dataclass(frozen=True)
class Venv:
    """The fresh venv, and the directory its commands run from (not the checkout)."""

    root: Path
    site_packages: Path
    elsewhere: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def tickmesh(self) -> Path:
        return self.root / "bin" / "tickmesh"

    def env(self, run_dir: Path, **more: str) -> dict[str, str]:
        """The environment of a command run in it: nothing of the checkout's on the path."""
        return {"TICKMESH_RUN_DIR": str(run_dir), "VIRTUAL_ENV": str(self.root),
                "PYTHONPATH": "", **more}

    def run(self, argv: list[str | Path], run_dir: Path, cwd: Path | None = None,
            **more: str) -> subprocess.CompletedProcess:
        """A short command, in a process group of its own that is killed once it is done."""
        with subprocess.Popen([str(arg) for arg in argv], cwd=cwd or self.elsewhere,
                              env={**os.environ, **self.env(run_dir, **more)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True) as process:
            try:
                out, err = process.communicate(timeout=30)
            finally:
                _kill_group(process)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pip(*argv: str | Path, python: Path | None = None) -> None:
    """This venv's pip, acting on the venv of `python` (which has no pip of its own)."""
    target = ["--python", str(python)] if python else []
    subprocess.run([sys.executable, "-m", "pip", *target, "--quiet", *map(str, argv)],
                   check=True, timeout=120, capture_output=True)


def build_wheel(into: Path) -> Path:
    """The wheel of a clean copy of this tree (the checkout's build/ may hold stale files)."""
    source = into / "source"
    folders = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in folders.values():
        shutil.copytree(REPO / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(into / "dist"), str(source)], check=True, timeout=120, capture_output=True)
    return next((into / "dist").glob("tickmesh-*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel installed into a fresh venv that sees this venv's dependencies."""
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base)
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=60)
    pip("install", "--no-deps", "--no-index", wheel, python=root / "bin" / "python")
    site_packages = Path(subprocess.run(
        [root / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=30).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (site_packages / "checkout_venv_dependencies.pth").write_text("\n".join(ours) + "\n")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Venv(root, site_packages, elsewhere)


def installed_files(venv: Venv) -> list[str]:
    """Every file the wheel put into site-packages (its RECORD), relative to site-packages."""
    record = next(venv.site_packages.glob("tickmesh-*.dist-info")) / "RECORD"
    return [line.split(",")[0] for line in record.read_text().splitlines() if line]


def imported_from(venv: Venv, run_dir: Path, module: str, cwd: Path | None = None) -> Path:
    done = venv.run([venv.python, "-c", f"import {module}; print({module}.__file__)"], run_dir,
                    cwd=cwd)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def assert_checks(venv: Venv, run_dir: Path, cwd: Path | None = None, **env: str) -> None:
    """`tickmesh check` with no argument checks the installed demo config, and passes."""
    done = venv.run([venv.tickmesh, "check"], run_dir, cwd=cwd, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {venv.site_packages / 'tickmesh' / 'config'}"), done.stdout


@pytest.mark.timeout(180)  # the first test builds and installs the wheel (~5 s, more on CI)
def test_site_packages_holds_tickmesh_and_no_other_name_of_ours(venv, run_dir):
    files = installed_files(venv)
    tops = {path.split("/")[0] for path in files if not path.startswith("..")}
    assert tops == {"tickmesh", next(venv.site_packages.glob("tickmesh-*.dist-info")).name}
    assert not [name for name in OUR_NAMES if (venv.site_packages / name).exists()]
    assert "tickmesh/config/default.toml" in files and "tickmesh/examples/spread.py" in files
    assert imported_from(venv, run_dir, "tickmesh").is_relative_to(venv.site_packages)


@pytest.fixture
def demo(venv: Venv, run_dir: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """`tickmesh run`, no argument, from elsewhere: the installed demo, in its own process
    group, killed at teardown whatever happened."""
    with (tmp_path / "run.log").open("w") as log:
        process = subprocess.Popen([venv.tickmesh, "run"], cwd=venv.elsewhere, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **venv.env(run_dir)})
    try:
        yield process
    finally:
        _kill_group(process)
        process.wait(timeout=10)


def events_flow(endpoint: str, system: subprocess.Popen, timeout: float) -> bool:
    """Whether a trade or quote is published on the bus within `timeout` s (False at once if
    the system exits)."""
    deadline = time.monotonic() + timeout
    with zmq.Context() as context, context.socket(zmq.SUB) as sub:
        sub.connect(endpoint)
        for kind in (b"trade.", b"quote."):
            sub.subscribe(kind)
        while system.poll() is None and time.monotonic() < deadline:
            if sub.poll(100):
                return True
    return False


def consumed(log: Path) -> bool:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return any(line.get("event") == "spread" for line in lines)


@pytest.mark.timeout(90)
def test_the_installed_demo_runs_checks_and_consumes_from_any_directory(venv, run_dir, demo,
                                                                          tmp_path):
    assert events_flow(f"ipc://{run_dir}/subscribe", demo, FIRST_EVENTS_WITHIN), \
        f"no event within {FIRST_EVENTS_WITHIN} s: {(tmp_path / 'run.log').read_text()}"
    assert_checks(venv, run_dir)
    found = venv.run([venv.python, "-c", NO_ENDPOINT], run_dir)
    assert (found.returncode, found.stdout) == (0, "Trade\n"), found.stderr
    consume_log = tmp_path / "consume.log"
    with consume_log.open("w") as log:
        consumer = subprocess.Popen([venv.tickmesh, "consume", "tickmesh.examples.spread:monitor"],
                                    cwd=venv.elsewhere, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, **venv.env(run_dir)})
    try:
        wait_until(lambda: consumed(consume_log), timeout=15, what="the example's spread lines")
        system = psutil.Process(demo.pid).children(recursive=True)
        commands = [process.cmdline() for process in system]
        assert {command[0] for command in commands} == {str(venv.python)}
        assert not [command for command in commands if str(REPO) in " ".join(command)]
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=10) == 0
    finally:
        _kill_group(consumer)
    demo.send_signal(signal.SIGINT)  # Ctrl-C
    assert demo.wait(timeout=30) == 0
    wait_until(lambda: not any(alive(process.pid) for process in system), timeout=10,
               what="every process of the system to be gone")


def supervisor_package(into: Path) -> Path:
    """The Supervisor process manager from the registry; a stand-in distribution named
    `supervisor` (its own supervisor/__init__.py) if the registry cannot be reached."""
    try:
        pip("download", "--no-deps", "--timeout", PYPI_TIMEOUT, "--retries", "0", "-d", into,
            "supervisor")
        return next(into.glob("supervisor-*.whl"))
    except (subprocess.CalledProcessError, StopIteration):
        return stand_in_supervisor(into)


def stand_in_supervisor(into: Path) -> Path:
    """A wheel of a distribution named `supervisor` holding a `supervisor` package."""
    wheel = into / "supervisor-0.0.1-py3-none-any.whl"
    files = {"supervisor/__init__.py": '"""A stand-in for the Supervisor process manager."""\n',
             "supervisor-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: supervisor\n"
                                                    "Version: 0.0.1\n",
             "supervisor-0.0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\n"
                                                 "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files["supervisor-0.0.1.dist-info/RECORD"] = "".join(f"{name},,\n" for name in files) + \
        "supervisor-0.0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def test_the_supervisor_package_beside_it_changes_nothing(venv, run_dir, tmp_path):
    before = {path: (venv.site_packages / path).read_bytes() for path in installed_files(venv)
              if path.startswith("tickmesh/")}
    pip("install", "--no-deps", "--no-index", supervisor_package(tmp_path), python=venv.python)
    try:
        assert imported_from(venv, run_dir, "supervisor").parent == venv.site_packages / "supervisor"
        assert_checks(venv, run_dir)
    finally:
        pip("uninstall", "-y", "supervisor", python=venv.python)
    assert not (venv.site_packages / "supervisor").exists()
    assert {path: (venv.site_packages / path).read_bytes() for path in before} == before
    assert_checks(venv, run_dir)


def test_a_project_with_its_own_handlers_and_bus_changes_nothing(venv, run_dir, tmp_path):
    project = tmp_path / "project"
    for package in ("handlers", "handlers/alpaca", "bus"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(
            f'raise ImportError("the project\'s own {package} was imported")\n')
    assert_checks(venv, run_dir, cwd=project, PYTHONPATH=str(project))
    assert imported_from(venv, run_dir, "tickmesh.bus", cwd=project).is_relative_to(
        venv.site_packages)
