"""``python -m symmerge`` runs the CLI."""

from symmerge.cli.app import main

if __name__ == "__main__":
    main()
