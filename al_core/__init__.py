"""al-explorer's library: catalog, importers, analytics and demo; no UI code lives here."""

__version__ = "0.1.0"
