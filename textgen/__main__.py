"""`python -m textgen` and the `textgen` command: the command line, loaded and run inside a
guard so that Ctrl-C at any moment, its imports included (most of a second), exits 130
without a traceback."""

import sys

from textgen.errors import INTERRUPTED_EXIT_CODE


def main() -> None:
    try:
        from textgen.cli import main as run_command_line

        run_command_line()
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
