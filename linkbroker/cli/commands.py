"""Imports every command module, so that each registers its commands on the app."""

from linkbroker.cli import admin, links, report, tokens, transfer

__all__ = ["admin", "links", "report", "tokens", "transfer"]
