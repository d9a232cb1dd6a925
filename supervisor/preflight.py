"""What is checked before a system starts, beyond the config file's shape (supervisor.config):

- every child's module and settings, by the child's own settings class (runtime.check, run
  in a process of its own: the supervisor imports no child's code);
- before `tickmesh run` only, the machine: nobody may already hold the bus endpoints or the
  ports the simulators will listen on (a second system would otherwise knock the first off or
  quietly take its bus over); with CURVE, the forwarder this system starts needs the server's
  secret key; the Prometheus endpoint's port must be free.

Each problem names the file, the child (children[3] (polygon)) and the key.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import NamedTuple

from bus.sockets import key_file_problem, owner_problem
from supervisor.config import Config, ConfigError

CHECK_TIMEOUT = 60.0


class Checked(NamedTuple):
    listens: list[list]
    """[where, host, port] of each address a child will listen on."""
    variables: dict[str, list[str]]
    """Per child name, the environment variables its settings name (runtime.check)."""


def check_children(config: Config) -> Checked:
    """Raise ConfigError listing every child whose module or settings are wrong; else what the
    children's settings say about the machine."""
    children = [{"name": child.name, "where": f"children[{index}] ({child.name})",
                 "run": child.run, "settings": child.settings}
                for index, child in enumerate(config.children)]
    try:
        done = subprocess.run([sys.executable, "-m", "runtime.check"], input=json.dumps(children),
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ConfigError(config.path, [f"the children could not be checked within "
                                        f"{CHECK_TIMEOUT:g} s"]) from None
    if done.returncode != 0:
        raise ConfigError(config.path, [f"the children could not be checked: {done.stderr}"])
    answer = json.loads(done.stdout)
    if answer["problems"]:
        raise ConfigError(config.path, answer["problems"])
    return Checked(answer["listens"], answer["variables"])


def check_machine(config: Config, listens: list[list]) -> None:
    """Raise ConfigError if the bus endpoints or a simulator's port are held already."""
    problems = [f"bus.{key}: {problem}" for key, endpoint in
                (("publish", config.bus.publish), ("subscribe", config.bus.subscribe))
                if (problem := owner_problem(endpoint))]
    if config.bus.curve and (problem := key_file_problem(config.bus.server_key_file, secret=True)):
        problems.append(f"bus.server_key_file: {problem} (the forwarder runs here)")
    for where, host, port in listens:
        if port and not _bindable(host, port):
            problems.append(f"{where}.settings.port: {host}:{port} is in use (another system, "
                            "or another program)")
    if config.metrics and not _bindable(*config.metrics):
        host, port = config.metrics
        problems.append(f"supervisor.metrics: {host}:{port} is in use (another system, or "
                        "another program): choose another port")
    if problems:
        raise ConfigError(config.path, problems)


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
