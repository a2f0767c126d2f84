"""``symmerge zoo ...`` commands."""

from __future__ import annotations

from symmerge.cli.app import zoo_app  # noqa: F401
