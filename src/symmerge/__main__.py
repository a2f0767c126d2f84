"""``python -m symmerge`` runs the CLI."""

from symmerge.cli.app import console_main

if __name__ == "__main__":
    console_main()
