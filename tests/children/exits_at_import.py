"""A child that runs main() when it is imported (a mistake: no `if __name__ == "__main__":`),
which, outside a supervisor, exits: "TICKMESH_CHILD is not set"."""

from tickmesh.runtime.spec import child_spec


def main() -> None:
    child_spec()


main()
