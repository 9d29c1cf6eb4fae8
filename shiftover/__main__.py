"""`python -m shiftover`: the same as the `shiftover` command."""

from shiftover.cli.main import main

main()
