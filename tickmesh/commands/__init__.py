"""One module per `tickmesh` command, named after it: a new command is a new file here.

Each module has a docstring whose first line is the command's help, and:
    def arguments(parser: argparse.ArgumentParser) -> None   # its arguments
    def run(args: argparse.Namespace, rest: list[str]) -> None
and, for a command that hands its arguments to another module's cli() unparsed,
    PASS_THROUGH = True    # `rest` holds them; otherwise unknown arguments are an error
"""
