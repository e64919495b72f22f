"""Feature definitions: written once, used for training, streaming and serving.

A :class:`FeatureDefinition` names a use case's inputs and outputs and carries two
implementations of one transform that are held equal by the tests:

* the batch path, :meth:`FeatureDefinition.transform`, vectorised over a history in
  pandas, for training and batch scoring;
* the streaming path, :meth:`FeatureDefinition.update`, pure Python over one event and
  the state of its key, which a Flink job keeps in keyed state. The state is a dict of
  JSON values, so it can be stored as JSON or pickled.

Its :meth:`~FeatureDefinition.schema` and :meth:`~FeatureDefinition.input_model` describe
the inputs and outputs for a serving endpoint.

>>> from workbench.datasets import card_transactions
>>> features = CARD_FRAUD.transform(card_transactions(1_000))
>>> list(features.columns) == list(CARD_FRAUD.outputs)
True
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic

from workbench.errors import DataError, WorkbenchError

__all__ = [
    "CARD_FRAUD",
    "CREDIT",
    "CREDIT_RISK_DIRECTIONS",
    "DEFINITIONS",
    "LOAN_APR",
    "LOAN_TERM_MONTHS",
    "MAX_COUNTRIES",
    "MAX_MERCHANTS",
    "MEAN_FLOOR",
    "NO_HISTORY",
    "NO_PREVIOUS",
    "FeatureDefinition",
    "FeatureDefinitionNotFound",
    "Kind",
    "State",
    "get_definition",
]

log = logging.getLogger(__name__)

Kind = Literal["float", "int", "str", "datetime"]
"""What a column holds: float64, int64, strings, or UTC timestamps."""

State = dict[str, Any]
"""Per-key state of the streaming path: JSON values only."""

Event = Mapping[str, Any]
Features = dict[str, Any]

_KINDS = ("float", "int", "str", "datetime")
_KIND_HINTS = {
    "float": "numbers (a float or int dtype)",
    "int": "whole numbers (an int dtype)",
    "str": "strings (object, string or categorical of strings)",
    "datetime": "timestamps (datetime64, naive UTC or timezone-aware)",
}


class FeatureDefinitionNotFound(WorkbenchError, LookupError):
    """No feature definition has the name asked for."""


@dataclass(frozen=True, eq=False)
class FeatureDefinition:
    """The features of one use case, defined once and computed three ways.

    ``inputs`` and ``outputs`` map column names to a :data:`Kind`, in order. ``key``
    names the input that partitions the stream (``None`` for a stateless definition)
    and ``order`` the inputs that order a key's events. ``reasons`` gives a plain
    reason text for outputs that can explain a decision. ``limits`` (inclusive
    bounds, ``None`` for open) and ``choices`` constrain input values.

    ``batch`` computes the outputs from a checked frame of inputs (timestamps as
    naive UTC ``datetime64[ns]``); ``step`` computes one event's outputs from the
    key's state and a checked event (timestamps as int nanoseconds since the epoch);
    ``initial`` makes the state of a key not seen yet. Call them through
    :meth:`transform`, :meth:`update` and :meth:`initial_state`, which check input.
    """

    name: str
    version: int
    key: str | None
    inputs: Mapping[str, Kind]
    outputs: Mapping[str, Kind]
    reasons: Mapping[str, str]
    description: str
    batch: Callable[[pd.DataFrame], pd.DataFrame] = field(repr=False)
    step: Callable[[State, Features], tuple[State, Features]] = field(repr=False)
    initial: Callable[[], State] = field(repr=False)
    order: tuple[str, ...] = ()
    limits: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("inputs", "outputs", "reasons", "limits", "choices"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        problems = [
            f"{where} {column!r} has kind {kind!r}; kinds are {_KINDS}"
            for where, columns in (("input", self.inputs), ("output", self.outputs))
            for column, kind in columns.items()
            if kind not in _KINDS
        ]
        named = [self.key] if self.key else []
        named += [*self.order, *self.limits, *self.choices]
        problems += [f"{c!r} is used but is not an input" for c in named if c not in self.inputs]
        problems += [f"reason for {c!r}, which is not an output" for c in self.reasons
                     if c not in self.outputs]  # fmt: skip
        if problems:
            raise WorkbenchError(f"feature definition {self.name!r}: " + "; ".join(problems))

    @property
    def label(self) -> str:
        """Name and version, as in logs and error messages: ``card_fraud v1``."""
        return f"{self.name} v{self.version}"

    def validate(self, frame: pd.DataFrame, *, allow_extra: bool = False) -> None:
        """Raise :class:`DataError` unless ``frame`` holds exactly the inputs, well typed.

        The message lists every problem at once: missing, unexpected (unless
        ``allow_extra``) and ill-typed columns, missing or out-of-range values, and
        an empty frame.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                f"{self.label} expects a pandas DataFrame, got {type(frame).__name__}; "
                "wrap records with pd.DataFrame(records)"
            )
        problems = self._column_problems(frame, allow_extra)
        if len(frame) == 0:
            problems.append("the frame has no rows")
        if problems:
            expected = ", ".join(f"{c} ({k})" for c, k in self.inputs.items())
            raise DataError(
                f"{self.label} cannot use this frame:\n  - "
                + "\n  - ".join(problems)
                + f"\nExpected columns: {expected}. Fix the columns above and try again."
            )

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return the outputs for every row of ``frame``, same index and row order.

        Columns that are not inputs (labels, ids) are ignored. For a keyed
        definition each row's features use only that key's earlier events.
        """
        self.validate(frame, allow_extra=True)
        started = time.perf_counter()
        result = self.batch(self._normalised(frame))
        if list(result.columns) != list(self.outputs):
            raise WorkbenchError(
                f"{self.label} produced columns {list(result.columns)!r}, "
                f"expected {list(self.outputs)!r}; the definition is broken"
            )
        log.info(
            "%s: %d rows featurized in %.2f s", self.label, len(frame),
            time.perf_counter() - started,
        )  # fmt: skip
        return result

    def initial_state(self) -> State:
        """The streaming state of a key that has no events yet."""
        return self.initial()

    def update(self, state: State, event: Event) -> tuple[State, Features]:
        """Fold one event into its key's state; return the new state and its features.

        ``state`` is not changed. Keys of ``event`` that are not inputs are ignored;
        timestamps may be datetimes or ISO 8601 strings. A keyed definition takes a
        key's events in order and raises :class:`DataError` for an event that is not
        after the last one, so a job can send it to the dead-letter topic.
        """
        return self.step(state, self._checked_event(event))

    def replay(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Compute the outputs by folding :meth:`update` over ``frame``, key by key.

        Same result as :meth:`transform` (sums to float rounding), one Python call
        per row: what a streaming job would emit for these events.
        """
        self.validate(frame, allow_extra=True)
        data = self._normalised(frame)
        columns = {c: _python_values(data[c], kind) for c, kind in self.inputs.items()}
        if self.key is None:
            positions: list[int] = list(range(len(data)))
        else:
            ordered = data.reset_index(drop=True).sort_values([self.key, *self.order])
            positions = ordered.index.tolist()
        states: dict[Any, State] = {}
        rows: list[Features] = [{}] * len(data)
        for position in positions:
            event = {c: values[position] for c, values in columns.items()}
            key = event[self.key] if self.key else None
            state = states[key] if key in states else self.initial()
            states[key], rows[position] = self.step(state, event)
        return _frame_of(rows, self.outputs, frame.index)

    def schema(self) -> dict[str, Any]:
        """A JSON-ready description of the definition, its inputs and outputs."""
        inputs = []
        for column, kind in self.inputs.items():
            entry: dict[str, Any] = {"name": column, "kind": kind}
            low, high = self.limits.get(column, (None, None))
            if low is not None:
                entry["minimum"] = low
            if high is not None:
                entry["maximum"] = high
            if column in self.choices:
                entry["choices"] = list(self.choices[column])
            inputs.append(entry)
        outputs = [
            {"name": c, "kind": k, **({"reason": self.reasons[c]} if c in self.reasons else {})}
            for c, k in self.outputs.items()
        ]
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "key": self.key,
            "order": list(self.order),
            "inputs": inputs,
            "outputs": outputs,
        }

    def input_model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of one event's inputs, for a serving endpoint's requests.

        Unknown fields, missing fields and values outside the limits or choices are
        rejected with an error that names the field.
        """
        fields: dict[str, Any] = {}
        for column, kind in self.inputs.items():
            low, high = self.limits.get(column, (None, None))
            annotation: Any = _PYTHON_TYPES[kind]
            if column in self.choices:
                annotation = Literal[self.choices[column]]
            elif kind == "float":
                annotation = Annotated[float, pydantic.Field(allow_inf_nan=False)]
            fields[column] = (annotation, pydantic.Field(ge=low, le=high))
        return pydantic.create_model(
            _model_name(self.name, "Inputs"),
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )

    def output_model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of one row of outputs, for an endpoint that takes features."""
        fields: dict[str, Any] = {c: (_PYTHON_TYPES[k], ...) for c, k in self.outputs.items()}
        return pydantic.create_model(
            _model_name(self.name, "Features"),
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{c}</td><td>{k}</td><td>{self.reasons.get(c, '')}</td></tr>"
            for c, k in self.outputs.items()
        )
        inputs = ", ".join(f"{c} ({k})" for c, k in self.inputs.items())
        return (
            f"<b>{self.label}</b>: {self.description}<br>key: {self.key}; inputs: {inputs}"
            f"<table><tr><th>feature</th><th>kind</th><th>reason</th></tr>{rows}</table>"
        )

    def _column_problems(self, frame: pd.DataFrame, allow_extra: bool) -> list[str]:
        problems = []
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            problems.append("missing columns: " + ", ".join(map(repr, missing)))
        extra = [c for c in frame.columns if c not in self.inputs]
        if extra and not allow_extra:
            problems.append(
                "unexpected columns: " + ", ".join(map(repr, extra))
                + " (drop them; transform ignores them)"
            )  # fmt: skip
        repeated = sorted(
            {c for c in frame.columns[frame.columns.duplicated()] if c in self.inputs}
        )
        if repeated:
            problems.append("columns that appear more than once: " + ", ".join(map(repr, repeated)))
            return problems
        for column, kind in self.inputs.items():
            if column in frame.columns:
                problems += self._value_problems(column, kind, frame[column])
        return problems

    def _value_problems(self, column: str, kind: Kind, values: pd.Series) -> list[str]:
        if not _has_kind(values, kind):
            return [f"{column!r} should hold {_KIND_HINTS[kind]}, got dtype {values.dtype}"]
        problems = []
        missing = values.isna().to_numpy()
        if missing.any():
            first = values.index[missing.argmax()]
            problems.append(
                f"{column!r} has {_count(missing.sum(), 'missing value')} "
                f"(first at index {first!r})"
            )
            return problems
        if kind in ("float", "int"):
            numbers = values.to_numpy(dtype=np.float64)
            low, high = self.limits.get(column, (None, None))
            bad = ~np.isfinite(numbers)
            if low is not None:
                bad |= numbers < low
            if high is not None:
                bad |= numbers > high
            if bad.any():
                problems.append(
                    f"{column!r} should be finite and within {_range_text(low, high)}, "
                    f"got {values[bad].tolist()[0]!r} at index {values.index[bad.argmax()]!r} "
                    f"({_count(bad.sum(), 'row')} like this)"
                )
        if column in self.choices:
            allowed = self.choices[column]
            unknown = ~values.isin(allowed).to_numpy()
            if unknown.any():
                seen = sorted({str(v) for v in values[unknown].unique()[:5]})
                problems.append(f"{column!r} should be one of {allowed!r}, got {seen!r}")
        return problems

    def _normalised(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The input columns as the batch path expects them, same index."""
        columns: dict[str, Any] = {}
        for column, kind in self.inputs.items():
            values = frame[column]
            if kind == "float":
                columns[column] = values.to_numpy(dtype=np.float64)
            elif kind == "int":
                columns[column] = values.to_numpy(dtype=np.int64)
            elif kind == "datetime":
                if isinstance(values.dtype, pd.DatetimeTZDtype):
                    values = values.dt.tz_convert("UTC").dt.tz_localize(None)
                columns[column] = values.to_numpy(dtype="datetime64[ns]")
            elif isinstance(values.dtype, pd.CategoricalDtype):
                columns[column] = values.astype(values.cat.categories.dtype).array
            else:
                columns[column] = values.array
        return pd.DataFrame(columns, index=frame.index)

    def _checked_event(self, event: Event) -> Features:
        if not isinstance(event, Mapping):
            raise DataError(
                f"{self.label} expects an event as a mapping of field to value, "
                f"got {type(event).__name__}"
            )
        missing = [c for c in self.inputs if c not in event]
        if missing:
            raise DataError(
                f"{self.label} cannot use this event: missing fields "
                + ", ".join(map(repr, missing))
                + f"; the event has {sorted(map(str, event))!r}"
            )
        checked: Features = {}
        for column, kind in self.inputs.items():
            value = _coerce(event[column], kind)
            problem = None
            if value is None:
                problem = f"should be {_EVENT_HINTS[kind]}"
            elif kind in ("float", "int") and not self._within_limits(column, value):
                low, high = self.limits[column]
                problem = f"should be within {_range_text(low, high)}"
            elif column in self.choices and value not in self.choices[column]:
                problem = f"should be one of {self.choices[column]!r}"
            if problem:
                raise DataError(
                    f"{self.label} cannot use this event: {column!r} {problem}, "
                    f"got {event[column]!r} ({type(event[column]).__name__})"
                )
            checked[column] = value
        return checked

    def _within_limits(self, column: str, value: float) -> bool:
        low, high = self.limits.get(column, (None, None))
        return (low is None or value >= low) and (high is None or value <= high)


_PYTHON_TYPES: dict[str, Any] = {"float": float, "int": int, "str": str, "datetime": datetime}
_EVENT_HINTS = {
    "float": "a finite number",
    "int": "a whole number",
    "str": "a string",
    "datetime": "a datetime or an ISO 8601 string",
}


def _has_kind(values: pd.Series, kind: Kind) -> bool:
    dtype = values.dtype
    types = pd.api.types
    if kind == "float":
        return types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    if kind == "int":
        return types.is_integer_dtype(dtype) and not types.is_bool_dtype(dtype)
    if kind == "datetime":
        return types.is_datetime64_any_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return types.is_string_dtype(dtype.categories.dtype)
    if dtype.kind == "O":
        return types.infer_dtype(values, skipna=True) in ("string", "empty")
    return bool(types.is_string_dtype(dtype))


def _coerce(value: Any, kind: Kind) -> Any:
    """The event value as the streaming path expects it, or ``None`` if it cannot be."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if kind == "float":
        if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value):
            return float(value)
        return None
    if kind == "int":
        return int(value) if isinstance(value, (int, np.integer)) else None
    if kind == "str":
        return value if isinstance(value, str) else None
    if not isinstance(value, (str, datetime, np.datetime64)):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if stamp is pd.NaT:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.value)


def _python_values(values: pd.Series, kind: Kind) -> list[Any]:
    if kind == "datetime":
        return values.to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    return values.tolist()


def _frame_of(rows: list[Features], kinds: Mapping[str, Kind], index: pd.Index) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for column, kind in kinds.items():
        values = [row[column] for row in rows]
        if kind == "float":
            columns[column] = np.array(values, dtype=np.float64)
        elif kind == "int":
            columns[column] = np.array(values, dtype=np.int64)
        else:
            columns[column] = pd.Series(values, index=index)
    return pd.DataFrame(columns, index=index)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"[{low}, {high}]"
    return f">= {low}" if low is not None else f"<= {high}"


def _model_name(name: str, suffix: str) -> str:
    return "".join(part.title() for part in name.split("_")) + suffix


# --- card fraud ---------------------------------------------------------------------

_HOUR_NS = 3_600 * 1_000_000_000
_DAY_NS = 24 * _HOUR_NS

NO_PREVIOUS = -1.0
"""``seconds_since_prev`` of a card's first event."""

NO_HISTORY = 1.0
"""``amount_over_mean`` of a card's first event (the amount is its own mean)."""

MEAN_FLOOR = 0.01
"""``amount_over_mean`` divides by at least this, so all-zero histories stay finite."""

MAX_MERCHANTS = 256
"""Merchants a card's streaming state remembers (least recently used go first)."""

MAX_COUNTRIES = 64
"""Countries a card's streaming state remembers (least recently used go first)."""


def _card_batch(data: pd.DataFrame) -> pd.DataFrame:
    n = len(data)
    card = pd.factorize(data["card_id"])[0].astype(np.int64)
    when = data["event_time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    amount = data["amount"].to_numpy(dtype=np.float64)
    order = _event_order(card, when, data["event_id"], data["card_id"])

    # The card's events in order: where each card starts, and what came before.
    c, t, a = card[order], when[order], amount[order]
    position = np.arange(n)
    first = np.ones(n, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    start = np.maximum.accumulate(np.where(first, position, 0))
    earlier = position - start
    total = pd.Series(a).groupby(c, sort=False).cumsum().to_numpy()
    before = np.zeros(n)
    before[1:] = total[:-1]
    before[first] = 0.0

    # Windows: earlier events of the card less than 24 h / 1 h before this one.
    day = _window_start(t, start, _DAY_NS)
    hour = _window_start(t, day, _HOUR_NS)
    gap = np.full(n, NO_PREVIOUS)
    gap[~first] = (t[1:] - t[:-1])[~first[1:]] / 1e9
    mean = np.maximum(before / np.maximum(earlier, 1), MEAN_FLOOR)
    ratio = np.where(earlier > 0, a / mean, NO_HISTORY)

    # First sightings of the card at a merchant or in a country.
    merchant = pd.factorize(data["merchant_id"])[0].astype(np.int64)[order]
    country = pd.factorize(data["country"])[0].astype(np.int64)[order]
    new_merchant = ~pd.Series(c * (merchant.max() + 1) + merchant).duplicated().to_numpy()
    new_country = ~pd.Series(c * (country.max() + 1) + country).duplicated().to_numpy()

    def unsorted(values: np.ndarray) -> np.ndarray:
        result = np.empty_like(values)
        result[order] = values
        return result

    return pd.DataFrame(
        {
            "txn_count_1h": unsorted(position - hour),
            "amount_sum_1h": unsorted(np.maximum(before - before[hour], 0.0)),
            "txn_count_24h": unsorted(position - day),
            "amount_sum_24h": unsorted(np.maximum(before - before[day], 0.0)),
            "seconds_since_prev": unsorted(gap),
            "amount_over_mean": unsorted(ratio),
            "is_new_merchant": unsorted(new_merchant.astype(np.int64)),
            "is_new_country": unsorted(new_country.astype(np.int64)),
            "amount": amount,
            "hour": (when // _HOUR_NS) % 24,
            "channel": data["channel"],
            "mcc": data["mcc"],
            "country": data["country"],
        },
        index=data.index,
    )


def _event_order(
    card: np.ndarray, when: np.ndarray, event_id: pd.Series, card_id: pd.Series
) -> np.ndarray:
    """Positions sorted by card, then event time, then event id."""
    order = np.lexsort((when, card))
    c, t = card[order], when[order]
    tied = (c[1:] == c[:-1]) & (t[1:] == t[:-1])
    if not tied.any():
        return order

    # Only events that share a card and a time need their ids compared.
    in_tie = np.zeros(len(order), dtype=bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    slots = np.flatnonzero(in_tie)
    rows = order[slots]
    ids = event_id.to_numpy(dtype=object)[rows]
    rank = np.unique(ids, return_inverse=True)[1].reshape(-1)
    resorted = np.lexsort((rank, when[rows], card[rows]))
    rows, rank = rows[resorted], rank[resorted]
    same = (card[rows][1:] == card[rows][:-1]) & (when[rows][1:] == when[rows][:-1])
    repeated = same & (rank[1:] == rank[:-1])
    if repeated.any():
        row = rows[1:][repeated][0]
        raise DataError(
            f"card_fraud: event_id {event_id.iloc[row]!r} appears more than once for card "
            f"{card_id.iloc[row]!r} at the same event_time; drop the duplicates "
            "(DataFrame.drop_duplicates(['card_id', 'event_time', 'event_id']))"
        )
    order[slots] = rows
    return order


def _window_start(t: np.ndarray, lower: np.ndarray, window: int) -> np.ndarray:
    """For each ``i``, the first ``j`` in ``[lower[i], i]`` with ``t[j] > t[i] - window``.

    ``t`` is sorted within each run that ``lower`` marks; a binary search for all rows
    at once, so the cost is n log(events per card) whatever the data look like.
    """
    low = lower.copy()
    high = np.arange(len(t))
    bound = t - window
    active = np.flatnonzero(low < high)
    while active.size:
        middle = (low[active] + high[active]) >> 1
        later = t[middle] > bound[active]
        high[active[later]] = middle[later]
        low[active[~later]] = middle[~later] + 1
        active = active[low[active] < high[active]]
    return low


CURRENCIES = ("EUR", "GBP", "USD", "PLN", "CHF", "SEK", "NOK", "DKK", "CZK", "HUF", "RON")
"""Currencies the card scheme settles; a payment in another one is not scored."""


def _card_initial() -> State:
    return {
        "card_id": None,
        "last_time": None,
        "last_id": None,
        "count": 0,
        "amount_total": 0.0,
        "window": [],
        "merchants": [],
        "countries": [],
    }


def _card_step(state: State, event: Features) -> tuple[State, Features]:
    card, when, event_id = event["card_id"], event["event_time"], event["event_id"]
    amount = event["amount"]
    _check_card_order(state, card, when, event_id)

    # The window keeps [time, amount] of the card's events in the last 24 h.
    window = [entry for entry in state["window"] if entry[0] > when - _DAY_NS]
    last_hour = [entry[1] for entry in window if entry[0] > when - _HOUR_NS]
    count = state["count"]
    mean = state["amount_total"] / count if count else 0.0
    merchants, new_merchant = _remember(state["merchants"], event["merchant_id"], MAX_MERCHANTS)
    countries, new_country = _remember(state["countries"], event["country"], MAX_COUNTRIES)

    features: Features = {
        "txn_count_1h": len(last_hour),
        "amount_sum_1h": math.fsum(last_hour),
        "txn_count_24h": len(window),
        "amount_sum_24h": math.fsum(entry[1] for entry in window),
        "seconds_since_prev": (when - state["last_time"]) / 1e9 if count else NO_PREVIOUS,
        "amount_over_mean": amount / max(mean, MEAN_FLOOR) if count else NO_HISTORY,
        "is_new_merchant": int(new_merchant),
        "is_new_country": int(new_country),
        "amount": amount,
        "hour": (when // _HOUR_NS) % 24,
        "channel": event["channel"],
        "mcc": event["mcc"],
        "country": event["country"],
    }
    new_state: State = {
        "card_id": card,
        "last_time": when,
        "last_id": event_id,
        "count": count + 1,
        "amount_total": state["amount_total"] + amount,
        "window": [*window, [when, amount]],
        "merchants": merchants,
        "countries": countries,
    }
    return new_state, features


def _check_card_order(state: State, card: str, when: int, event_id: str) -> None:
    if state["card_id"] is not None and card != state["card_id"]:
        raise DataError(
            f"card_fraud: an event of card {card!r} came with the state of card "
            f"{state['card_id']!r}; keep one state per card_id"
        )
    last = state["last_time"]
    if last is not None and (when, event_id) <= (last, state["last_id"]):
        raise DataError(
            f"card_fraud: event {event_id!r} of card {card!r} at "
            f"{pd.Timestamp(when)} is not after the card's last event {state['last_id']!r} "
            f"at {pd.Timestamp(last)}; events of a card must come in (event_time, event_id) "
            "order without repeats"
        )


def _remember(seen: list[str], value: str, bound: int) -> tuple[list[str], bool]:
    """``seen`` with ``value`` moved to the end, at most ``bound`` long; was it new?"""
    new = value not in seen
    kept = [item for item in seen if item != value] if not new else list(seen)
    kept.append(value)
    return kept[-bound:], new


CARD_FRAUD = FeatureDefinition(
    name="card_fraud",
    version=1,
    key="card_id",
    order=("event_time", "event_id"),
    description=(
        "Per-card history features for card payments, point-in-time correct: "
        "an event's features use only the card's earlier events."
    ),
    inputs={
        "card_id": "str",
        "event_id": "str",
        "event_time": "datetime",
        "amount": "float",
        "currency": "str",
        "merchant_id": "str",
        "mcc": "str",
        "country": "str",
        "channel": "str",
    },
    outputs={
        "txn_count_1h": "int",
        "amount_sum_1h": "float",
        "txn_count_24h": "int",
        "amount_sum_24h": "float",
        "seconds_since_prev": "float",
        "amount_over_mean": "float",
        "is_new_merchant": "int",
        "is_new_country": "int",
        "amount": "float",
        "hour": "int",
        "channel": "str",
        "mcc": "str",
        "country": "str",
    },
    reasons={
        "txn_count_1h": "Number of payments on the card in the last hour",
        "amount_sum_1h": "Amount spent on the card in the last hour",
        "txn_count_24h": "Number of payments on the card in the last day",
        "amount_sum_24h": "Amount spent on the card in the last day",
        "seconds_since_prev": "Time since the card's previous payment",
        "amount_over_mean": "Amount compared with what this card usually spends",
        "is_new_merchant": "Whether the card has paid at this merchant before",
        "is_new_country": "Whether the card has been used in this country before",
        "amount": "Payment amount",
        "hour": "Time of day of the payment",
        "channel": "Payment channel",
        "mcc": "Merchant category",
        "country": "Country of the payment",
    },
    limits={"amount": (0.0, None)},
    choices={"channel": ("pos", "ecom", "atm"), "currency": CURRENCIES},
    batch=_card_batch,
    step=_card_step,
    initial=_card_initial,
)
"""Card-fraud features, per ``card_id``.

A card's events are ordered by (``event_time``, ``event_id``); an event's *earlier*
events are those before it in that order, so of two events at the same time the one
with the smaller ``event_id`` counts as earlier. Outputs:

* ``txn_count_1h``, ``amount_sum_1h``, ``txn_count_24h``, ``amount_sum_24h``: count and
  sum of amounts of earlier events with ``event_time > t - window``, where ``t`` is the
  event's time. An event exactly one window before is out; the event itself is out.
* ``seconds_since_prev``: seconds since the previous event, 0.0 for a tie,
  :data:`NO_PREVIOUS` (-1.0) for the card's first event.
* ``amount_over_mean``: amount over the mean of all earlier amounts (floored at
  :data:`MEAN_FLOOR`), :data:`NO_HISTORY` (1.0) for the card's first event.
* ``is_new_merchant``, ``is_new_country``: 1 if no earlier event of the card has this
  ``merchant_id`` / ``country``, else 0.
* ``amount``, ``hour`` (0-23, UTC), ``channel``, ``mcc``, ``country``: the event's own.

The streaming state keeps only the last 24 h of events, the running count and sum,
and the :data:`MAX_MERCHANTS` merchants and :data:`MAX_COUNTRIES` countries the card
used most recently. Streaming equals batch exactly for counts and flags (sums to
float rounding) as long as a card has used no more distinct merchants and countries
than those bounds; past them, a long-unused merchant or country can count as new
again in the stream.
"""


# --- credit -------------------------------------------------------------------------

LOAN_APR = 0.10
"""Annual rate used to turn a requested amount into a monthly payment."""

LOAN_TERM_MONTHS = 36
"""Term used to turn a requested amount into a monthly payment."""

_MONTHLY_RATE = LOAN_APR / 12
_PAYMENT_PER_UNIT = _MONTHLY_RATE / (1 - (1 + _MONTHLY_RATE) ** -LOAN_TERM_MONTHS)
_INCOME_FLOOR = 1.0


def _credit_batch(data: pd.DataFrame) -> pd.DataFrame:
    income = data["income"].to_numpy(dtype=np.float64)
    requested = data["requested_amount"].to_numpy(dtype=np.float64)
    debt = data["debt_to_income"].to_numpy(dtype=np.float64)
    delinquencies = data["delinquencies"].to_numpy(dtype=np.int64)
    income_base = np.maximum(income, _INCOME_FLOOR)
    payment = 12 * requested * _PAYMENT_PER_UNIT / income_base
    return pd.DataFrame(
        {
            "income": income,
            "log_income": np.log1p(income),
            "debt_to_income": debt,
            "utilisation": data["utilisation"].to_numpy(dtype=np.float64),
            "delinquencies": delinquencies,
            "has_delinquency": (delinquencies > 0).astype(np.int64),
            "months_on_file": data["months_on_file"].to_numpy(dtype=np.int64),
            "inquiries_6m": data["inquiries_6m"].to_numpy(dtype=np.int64),
            "requested_amount": requested,
            "loan_to_income": requested / income_base,
            "payment_to_income": payment,
            "total_debt_to_income": debt + payment,
            "employment": data["employment"],
            "housing": data["housing"],
        },
        index=data.index,
    )


def _credit_step(state: State, event: Features) -> tuple[State, Features]:
    income, requested = event["income"], event["requested_amount"]
    income_base = max(income, _INCOME_FLOOR)
    payment = 12 * requested * _PAYMENT_PER_UNIT / income_base
    features: Features = {
        "income": income,
        "log_income": math.log1p(income),
        "debt_to_income": event["debt_to_income"],
        "utilisation": event["utilisation"],
        "delinquencies": event["delinquencies"],
        "has_delinquency": int(event["delinquencies"] > 0),
        "months_on_file": event["months_on_file"],
        "inquiries_6m": event["inquiries_6m"],
        "requested_amount": requested,
        "loan_to_income": requested / income_base,
        "payment_to_income": payment,
        "total_debt_to_income": event["debt_to_income"] + payment,
        "employment": event["employment"],
        "housing": event["housing"],
    }
    return state, features


CREDIT = FeatureDefinition(
    name="credit",
    version=1,
    key=None,
    description=(
        "Stateless features of a credit application: the application's fields and "
        "affordability ratios of the amount requested."
    ),
    inputs={
        "income": "float",
        "debt_to_income": "float",
        "utilisation": "float",
        "delinquencies": "int",
        "months_on_file": "int",
        "inquiries_6m": "int",
        "requested_amount": "float",
        "employment": "str",
        "housing": "str",
    },
    outputs={
        "income": "float",
        "log_income": "float",
        "debt_to_income": "float",
        "utilisation": "float",
        "delinquencies": "int",
        "has_delinquency": "int",
        "months_on_file": "int",
        "inquiries_6m": "int",
        "requested_amount": "float",
        "loan_to_income": "float",
        "payment_to_income": "float",
        "total_debt_to_income": "float",
        "employment": "str",
        "housing": "str",
    },
    reasons={
        "income": "Income is low",
        "log_income": "Income is low",
        "debt_to_income": "Existing debt repayments are high compared with income",
        "utilisation": "Revolving credit balances are high compared with their limits",
        "delinquencies": "Late or missed payments on credit accounts",
        "has_delinquency": "Late or missed payments on credit accounts",
        "months_on_file": "Credit history is short",
        "inquiries_6m": "Several applications for credit in the last six months",
        "requested_amount": "The amount requested is high",
        "loan_to_income": "The amount requested is large compared with income",
        "payment_to_income": "Repayments on the amount requested are high compared with income",
        "total_debt_to_income": "All repayments after this loan would be high compared with income",
        "employment": "Employment status",
        "housing": "Residential status",
    },
    limits={
        "income": (0.0, None),
        "debt_to_income": (0.0, None),
        "utilisation": (0.0, None),
        "delinquencies": (0, None),
        "months_on_file": (0, None),
        "inquiries_6m": (0, None),
        "requested_amount": (1.0, None),
    },
    choices={
        "employment": ("employed", "self_employed", "unemployed", "retired", "student"),
        "housing": ("own", "mortgage", "rent", "other"),
    },
    batch=_credit_batch,
    step=_credit_step,
    initial=dict,
)
"""Credit-application features; stateless, so the state stays ``{}``.

Ratios divide by the income floored at 1.0. ``payment_to_income`` is twelve monthly
payments of the requested amount (:data:`LOAN_APR` over :data:`LOAN_TERM_MONTHS`
months) over the yearly income; ``total_debt_to_income`` adds ``debt_to_income``;
``log_income`` is ``log(1 + income)``; ``has_delinquency`` is 1 if ``delinquencies > 0``.
"""


#: How each credit feature may move the default score: +1 only up, -1 only down. Pass
#: it as ``wb.classifier(X, monotone=CREDIT_RISK_DIRECTIONS)`` so that the decline
#: reasons read true ("income is low" never explains a high score from a high income).
CREDIT_RISK_DIRECTIONS: Mapping[str, int] = MappingProxyType(
    {
        "income": -1,
        "log_income": -1,
        "debt_to_income": 1,
        "utilisation": 1,
        "delinquencies": 1,
        "has_delinquency": 1,
        "months_on_file": -1,
        "inquiries_6m": 1,
        "requested_amount": 1,
        "loan_to_income": 1,
        "payment_to_income": 1,
        "total_debt_to_income": 1,
    }
)


DEFINITIONS: Mapping[str, FeatureDefinition] = MappingProxyType(
    {definition.name: definition for definition in (CARD_FRAUD, CREDIT)}
)
"""Every feature definition, by name."""


def get_definition(name: str) -> FeatureDefinition:
    """The feature definition called ``name``, e.g. ``"card_fraud"`` or ``"credit"``."""
    try:
        return DEFINITIONS[name]
    except KeyError:
        raise FeatureDefinitionNotFound(
            f"no feature definition is called {name!r}; known: {sorted(DEFINITIONS)!r}"
        ) from None
