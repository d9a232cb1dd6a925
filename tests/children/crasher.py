"""A child that exits at once with settings["code"] (default 1)."""

import sys
from dataclasses import dataclass

from tickmesh.runtime.spec import child_spec


@dataclass(frozen=True)
class Settings:
    code: int = 1


def main() -> None:
    sys.exit(int(child_spec().settings.get("code", 1)))


if __name__ == "__main__":
    main()
