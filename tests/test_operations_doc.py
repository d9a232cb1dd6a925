"""The deployment guide (docs/operations.md, "Across machines: deployment") as written: every
host's config of every layout, with the key files the guide says that host holds, passes
`tickmesh check`; the hosts of one layout share one bus (the same endpoints), each line has one
forwarder host, and no two hosts share a supervisor's or a child's name."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tickmesh.bus.sockets import create_keys
from tickmesh.supervisor import config
from tests.conftest import REPO
from tests.supervised import TICKMESH

SECTION = "## Across machines: deployment"
LAYOUTS = {"One host": ["host"],
           "Two hosts: handlers and consumers apart": ["feed", "apps"],
           "Two lines: A and B on two forwarder hosts": ["fa", "fb", "feed", "apps"]}
HOST = re.compile(r"# (\S+): /etc/tickmesh/tickmesh\.toml\n")
LINES = ("publish", "subscribe", "publish_b", "subscribe_b", "curve")


def layouts() -> dict[str, dict[str, str]]:
    """{layout: {host: its config's text}}, from the guide's ### sections and ```toml blocks."""
    guide = (REPO / "docs/operations.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = {}
    for part in guide.split("\n### ")[1:]:
        title, body = part.split("\n", 1)
        blocks = re.findall(r"```toml\n(.*?)```", body, re.S)
        found[title] = {HOST.match(block).group(1): block for block in blocks}
    return {title: hosts for title, hosts in found.items() if hosts}


def hold_keys(home: Path, bus: dict[str, Any]) -> None:
    """The key files a host's [bus] names, as the guide says that host holds them: a secret
    key only where it is named, the server's public key alone elsewhere."""
    keys = home / "keys"
    for key in ("server_key_file", "client_key_file"):
        if key in bus:
            name, _, kind = Path(bus[key]).name.partition(".")
            public, secret = create_keys(keys, name)
            if kind == "key":  # the public key only: the pair stays with its owner
                secret.unlink()
    if "authorized_keys" in bus:
        (home / bus["authorized_keys"]).mkdir(parents=True, exist_ok=True)


def write_host(base: Path, host: str, text: str) -> Path:
    home = base / host
    home.mkdir()
    path = home / "tickmesh.toml"
    path.write_text(text)
    hold_keys(home, tomllib.loads(text)["bus"])
    return path


def test_the_guide_has_its_three_layouts_and_every_host_of_each():
    assert {title: list(hosts) for title, hosts in layouts().items()} == LAYOUTS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_host_config_of_a_layout_passes_check(layout: str, run_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TICKMESH_RUN_DIR", str(run_dir / "run"))
    paths = {host: write_host(run_dir, host, text) for host, text in layouts()[layout].items()}
    loaded = {host: config.load(path) for host, path in paths.items()}
    checks = {host: subprocess.Popen([*TICKMESH, "check", str(path)], cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for host, path in paths.items()}
    for host, check in checks.items():
        out, err = check.communicate(timeout=90)
        assert check.returncode == 0 and out.startswith("ok: ") and not err, (host, out, err)
    assert len({tuple(getattr(c.bus, key) for key in LINES) for c in loaded.values()}) == 1
    served = [c.bus.forwarder for c in loaded.values() if c.bus.forwarder != "none"]
    assert sorted(served) == [line.name for line in next(iter(loaded.values())).bus.lines]
    names = [name for c in loaded.values() for name in (c.name, *(k.name for k in c.children))]
    assert len(names) == len(set(names)), names
