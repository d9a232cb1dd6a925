"""make a CURVE key pair for a bus across machines: DIR/NAME.key, DIR/NAME.key_secret"""

from __future__ import annotations

import argparse
import socket

from tickmesh.bus import sockets
from tickmesh.system import EXIT_USAGE, die


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory")
    parser.add_argument("--name", default=socket.gethostname(),
                        help="the key pair's name (default: this host's name)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    if "/" in args.name or args.name.strip(".") == "":
        die(f"--name: {args.name!r} is not a file name", EXIT_USAGE)
    public, secret = sockets.create_keys(args.directory, args.name)
    print(f"public key: {public}  (copy it into the forwarder's authorized_keys directory, and, "
          "for the forwarder's own pair, to every machine as server_key_file)")
    print(f"secret key: {secret}  (keep it on this machine only: client_key_file, or the "
          "forwarder's server_key_file)")
