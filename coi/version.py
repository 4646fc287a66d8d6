"""The installed version, for the app's pages and the API document."""

from importlib import metadata

__version__ = metadata.version("coi-platform")
