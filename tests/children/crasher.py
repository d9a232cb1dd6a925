"""A child that exits at once with settings["code"] (default 1)."""

import sys

from bus.process import child_spec


def main() -> None:
    sys.exit(int(child_spec().settings.get("code", 1)))


if __name__ == "__main__":
    main()
