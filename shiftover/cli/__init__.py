"""The `shiftover` command: typer and rich over the flows (shiftover.cli.main:main)."""
