"""The package version (the one version source, read by hatch)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
