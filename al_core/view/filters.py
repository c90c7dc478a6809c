"""The sample filter shared by every page: what it holds, and its round trip through a URL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from al_core.view.sql import RunRef

LABELED_CHOICES = ("all", "labeled", "unlabeled")
#: The model's view of a sample: ``correct`` / ``wrong`` (labeled, prediction equals the label or
#: not) or ``unlabeled`` (in the pool, with a prediction).
OUTCOME_CHOICES = ("all", "correct", "wrong", "unlabeled")
#: Membership of the next batch (the open draft): ``in`` it, ``out`` of it, or either.
BATCH_CHOICES = ("all", "in", "out")
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
    #: the model's view: which run (``None``: none chosen), its predicted classes, a confidence
    #: range ``[low, high]``, the outcome; and tags a sample must not have
    run: RunRef | None = None
    pred_classes: tuple[str, ...] = ()
    confidence: tuple[float, float] | None = None
    outcome: str = "all"
    tags_exclude: tuple[str, ...] = ()
    batch: str = "all"
    #: only these samples (a similarity result, a map selection), listed in their own order
    #: (gallery sort ``listed``); empty: no restriction. Not part of the URL: too long for one.
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labeled not in LABELED_CHOICES:
            raise ValueError(f"labeled must be one of {LABELED_CHOICES}, not {self.labeled!r}")
        if self.outcome not in OUTCOME_CHOICES:
            raise ValueError(f"outcome must be one of {OUTCOME_CHOICES}, not {self.outcome!r}")
        if self.batch not in BATCH_CHOICES:
            raise ValueError(f"batch must be one of {BATCH_CHOICES}, not {self.batch!r}")

    @property
    def on_model(self) -> bool:
        """True when the filter asks something of a model run's predictions."""
        return bool(self.pred_classes or self.confidence is not None or self.outcome != "all"
                    or any(c.column in ("pred_label", "class_or_pred") for c in self.conditions))

    def key(self) -> str:
        """A stable text key for caches."""
        return json.dumps(self.to_query_params(), sort_keys=True) + repr(self.conditions) + (
            repr(self.ids) if self.ids else "")

    def narrowed(self, *conditions: Condition) -> Filter:
        """This filter with extra drill-down conditions AND-ed on."""
        return replace(self, conditions=self.conditions + tuple(conditions))

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
        if self.run is not None and not self.run.cached:  # the newest run is the default
            params["run"] = [self.run.name]
        if self.pred_classes:
            params["pred"] = list(self.pred_classes)
        if self.confidence is not None:
            params["conf"] = [f"{self.confidence[0]!r}{_RANGE_SEP}{self.confidence[1]!r}"]
        if self.outcome != "all":
            params["outcome"] = [self.outcome]
        if self.tags_exclude:
            params["notag"] = list(self.tags_exclude)
        if self.batch != "all":
            params["batch"] = [self.batch]
        return params

    @classmethod
    def from_query_params(cls, params: dict[str, list[str]], fields: dict[str, str],
                          runs: dict[str, RunRef] | None = None) -> Filter:
        """Parse what :meth:`to_query_params` wrote; unknown fields, runs and bad values are ignored."""
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
        outcome = (params.get("outcome") or ["all"])[0]
        batch = (params.get("batch") or ["all"])[0]
        return cls(
            run=_run_named(runs or {}, (params.get("run") or [""])[0]),
            pred_classes=tuple(params.get("pred", [])),
            confidence=_unit_range((params.get("conf") or [""])[0]),
            outcome=outcome if outcome in OUTCOME_CHOICES else "all",
            tags_exclude=tuple(params.get("notag", [])),
            batch=batch if batch in BATCH_CHOICES else "all",
            splits=tuple(params.get("split", [])),
            classes=tuple(params.get("class", [])),
            labeled=labeled if labeled in LABELED_CHOICES else "all",
            tags=tuple(params.get("tag", [])),
            categorical=tuple(categorical),
            numeric=tuple(numeric),
            dates=tuple(dates),
        )


def _run_named(runs: dict[str, RunRef], name: str) -> RunRef | None:
    """The run a link names; without one (or an unknown one), the newest: the mirrored run."""
    return runs.get(name) or next((r for r in runs.values() if r.cached), None)


def _unit_range(text: str) -> tuple[float, float] | None:
    """``low..high`` inside [0, 1] (a confidence range), or None."""
    try:
        lo, hi = (float(v) for v in text.split(_RANGE_SEP))
    except ValueError:
        return None
    if not (0.0 <= lo <= hi <= 1.0):
        return None
    return (lo, hi)


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


#: Columns a drill-down condition may name besides the metadata fields.
DRILL_COLUMNS = frozenset({"label", "split", "pred_label", "class_or_pred", "sample_id"})


def drill_from_link(spec: str | None, fields: dict[str, str]) -> tuple[str, tuple[Condition, ...]] | None:
    """A drill-down from a URL, or None when it is missing, malformed or names unknown columns."""
    if not spec:
        return None
    try:
        title, conditions = parse_drill(spec)
        if not isinstance(title, str):
            return None
        return title, tuple(_bindable(c, fields) for c in conditions)
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):  # deep JSON: RecursionError
        return None


#: Columns of a drill-down whose range bounds are text (the built-in ones are all text).
_TEXT_TYPES = frozenset({"VARCHAR"})


def _bindable(cond: Condition, fields: dict[str, str]) -> Condition:
    """``cond`` from a link, checked so its SQL binds: a known column, and range bounds of the
    column's type (numbers for a number field, ISO date-times for a time field, text for a text
    column); raises ValueError otherwise. (Equality values are compared as text: any will do.)"""
    if not isinstance(cond.column, str) or (cond.column not in DRILL_COLUMNS and cond.column not in fields):
        raise ValueError(f"unknown column {cond.column!r}")
    kind = "text" if cond.column in DRILL_COLUMNS or fields[cond.column] in _TEXT_TYPES else field_kind(
        fields[cond.column])
    bounds = []
    for bound in (cond.low, cond.high):
        if bound is None:
            bounds.append(None)
        elif kind == "numeric" and isinstance(bound, int | float) and not isinstance(bound, bool):
            bounds.append(float(bound))
        elif kind == "time" and isinstance(bound, str) and datetime.fromisoformat(bound).tzinfo is None:
            bounds.append(datetime.fromisoformat(bound).isoformat(sep=" "))
        elif kind == "text" and isinstance(bound, str):
            bounds.append(bound)
        else:
            raise ValueError(f"a {type(bound).__name__} bound on {cond.column!r}")
    return replace(cond, low=bounds[0], high=bounds[1])


def parse_drill(spec: str) -> tuple[str, tuple[Condition, ...]]:
    """``(title, conditions)`` from :func:`drill_spec` output."""
    data = json.loads(spec)
    return data["title"], tuple(Condition(col, value, low, high, bool(is_null))
                                for col, value, low, high, is_null in data["conditions"])
