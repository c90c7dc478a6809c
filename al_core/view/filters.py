"""The sample filter shared by every page: what it holds, and its round trip through a URL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

LABELED_CHOICES = ("all", "labeled", "unlabeled")
_RANGE_SEP = ".."


@dataclass(frozen=True)
class Condition:
    """One drill-down condition on a column: equality (``value``), a range, or missing.

    ``column`` is ``label``, ``split``, ``pred_label`` or a metadata field name.
    """

    column: str
    value: Any = None
    low: Any = None
    high: Any = None
    is_null: bool = False


@dataclass(frozen=True)
class Filter:
    """Sidebar filter. Empty selections mean "no restriction".

    ``categorical`` maps a text field to allowed values, ``numeric`` a number field to an
    inclusive ``(low, high)``, ``dates`` a timestamp field to an inclusive ``(first, last)`` day.
    """

    splits: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    labeled: str = "all"
    tags: tuple[str, ...] = ()
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()
    numeric: tuple[tuple[str, tuple[float, float]], ...] = ()
    dates: tuple[tuple[str, tuple[date, date]], ...] = ()
    conditions: tuple[Condition, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.labeled not in LABELED_CHOICES:
            raise ValueError(f"labeled must be one of {LABELED_CHOICES}, not {self.labeled!r}")

    def key(self) -> str:
        """A stable text key for caches."""
        return json.dumps(self.to_query_params(), sort_keys=True) + repr(self.conditions)

    def narrowed(self, *conditions: Condition) -> Filter:
        """This filter with extra drill-down conditions AND-ed on."""
        return Filter(self.splits, self.classes, self.labeled, self.tags, self.categorical,
                      self.numeric, self.dates, self.conditions + tuple(conditions))

    # ------------------------------------------------------------------ URL round trip
    def to_query_params(self) -> dict[str, list[str]]:
        """``{key: [values]}`` for ``st.query_params`` (lists become repeated keys)."""
        params: dict[str, list[str]] = {}
        if self.splits:
            params["split"] = list(self.splits)
        if self.classes:
            params["class"] = list(self.classes)
        if self.labeled != "all":
            params["labeled"] = [self.labeled]
        if self.tags:
            params["tag"] = list(self.tags)
        for name, values in self.categorical:
            params[f"f.{name}"] = list(values)
        for name, (lo, hi) in self.numeric:
            params[f"f.{name}"] = [f"{lo!r}{_RANGE_SEP}{hi!r}"]
        for name, (first, last) in self.dates:
            params[f"f.{name}"] = [f"{first.isoformat()}{_RANGE_SEP}{last.isoformat()}"]
        return params

    @classmethod
    def from_query_params(cls, params: dict[str, list[str]], fields: dict[str, str]) -> Filter:
        """Parse what :meth:`to_query_params` wrote; unknown fields and bad values are ignored."""
        labeled = (params.get("labeled") or ["all"])[0]
        categorical, numeric, dates = [], [], []
        for key, values in params.items():
            if not key.startswith("f.") or not values:
                continue
            name = key[2:]
            kind = field_kind(fields.get(name, ""))
            try:
                if kind == "categorical":
                    categorical.append((name, tuple(values)))
                elif kind == "numeric":
                    lo, hi = values[0].split(_RANGE_SEP)
                    numeric.append((name, (float(lo), float(hi))))
                elif kind == "time":
                    first, last = values[0].split(_RANGE_SEP)
                    dates.append((name, (date.fromisoformat(first), date.fromisoformat(last))))
            except ValueError:
                continue
        return cls(
            splits=tuple(params.get("split", [])),
            classes=tuple(params.get("class", [])),
            labeled=labeled if labeled in LABELED_CHOICES else "all",
            tags=tuple(params.get("tag", [])),
            categorical=tuple(categorical),
            numeric=tuple(numeric),
            dates=tuple(dates),
        )


def field_kind(duck_type: str) -> str:
    """How a metadata field is filtered and charted: categorical, numeric, time or boolean."""
    t = duck_type.upper()
    if t in ("BIGINT", "DOUBLE", "INTEGER", "FLOAT"):
        return "numeric"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "time"
    if t == "BOOLEAN":
        return "categorical"
    return "categorical" if t == "VARCHAR" else ""


def drill_spec(title: str, *conditions: Condition) -> str:
    """A drill-down as a JSON string, small enough for a chart point's ``customdata``."""
    return json.dumps({"title": title, "conditions": [
        [c.column, c.value, c.low, c.high, c.is_null] for c in conditions]}, default=str)


def parse_drill(spec: str) -> tuple[str, tuple[Condition, ...]]:
    """``(title, conditions)`` from :func:`drill_spec` output."""
    data = json.loads(spec)
    return data["title"], tuple(Condition(col, value, low, high, bool(is_null))
                                for col, value, low, high, is_null in data["conditions"])
