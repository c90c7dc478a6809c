"""Exceptions with messages a user can act on: each names the file, row or field at fault."""

from __future__ import annotations


class AlExplorerError(Exception):
    """Base class of every error al-explorer reports to a user instead of a traceback."""


class CatalogError(AlExplorerError):
    """The catalog file cannot be opened or used as asked."""


class SchemaVersionError(CatalogError):
    """The catalog was written by a newer al-explorer than this one."""


class CatalogBusyError(CatalogError):
    """Another process holds the catalog's write lock."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class IngestError(AlExplorerError):
    """An input file is malformed; nothing was written.

    ``problems`` lists every problem found (each naming file, row and column), so a user
    can fix them all in one go rather than one per run.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        lines = [f"{source}: {p}" for p in shown]
        if more > 0:
            lines.append(f"{source}: ... and {more} more problem(s)")
        super().__init__("\n".join(lines) + "\nNothing was written to the catalog.")
