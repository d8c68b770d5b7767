"""Imports every command module, so that each registers its commands on the app."""

from linkbroker.cli import admin, lifecycle, links, qr, report, tokens, transfer

__all__ = ["admin", "lifecycle", "links", "qr", "report", "tokens", "transfer"]
