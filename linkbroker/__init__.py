"""linkbroker: short links from one machine, with nothing to set up."""

__version__ = "0.1.0"
