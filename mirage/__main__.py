"""`python -m mirage` runs the CLI."""

from mirage.cli import main

main()
