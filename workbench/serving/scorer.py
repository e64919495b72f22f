"""Turning records into scores and reasons, for one loaded model version.

A model built by :func:`workbench.classifier` (an ordinal encoder in front of LightGBM)
is scored on a fast path: categories are encoded with plain dictionaries and the
LightGBM booster is called on a float matrix. Its reasons are path attributions: in
each tree, the change in the node value at every split on the way to the leaf is
credited to the split's feature. That depends only on the leaf reached, so it is
tabulated once per model and a record's contributions are a sum of table rows: about
as cheap as the prediction, where LightGBM's exact SHAP values (``pred_contrib``) cost
milliseconds a record. The contributions add up to the raw score, like SHAP values.
With reasons, LightGBM is asked only for the leaf each tree reaches: the score is the
sum of those leaves' outputs, added in LightGBM's order, which gives its own scores to
the bit (checked when the model is loaded; otherwise LightGBM scores them).

Any other classifier is scored through a DataFrame and its ``predict_proba``; such a
model gives no reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOP_REASONS = 3
_SPARSE_FROM = 8  # rows from which the sparse product beats indexing

# MLflow signature types and the JSON values each accepts.
_NUMBER = (int, float)
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "double": _NUMBER,
    "float": _NUMBER,
    "long": (int,),
    "integer": (int,),
    "boolean": (bool,),
}
# The exact Python types orjson gives for values a type accepts (bool is not a number).
_EXACT: dict[str, frozenset[type]] = {
    name: frozenset(t for t in accepted if t is not bool or name == "boolean")
    for name, accepted in _ACCEPTS.items()
}
_MISSING = object()
_TYPE_WORD = {
    "string": "a string",
    "double": "a number",
    "float": "a number",
    "long": "an integer",
    "integer": "an integer",
    "boolean": "true or false",
}


@dataclass(frozen=True)
class Field:
    """One input field: its name and MLflow type."""

    name: str
    type: str


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one record."""

    record: int
    field: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "error": self.error}


def validate(records: Sequence[Any], fields: Sequence[Field]) -> list[Problem]:
    """Every problem of every record against the input fields; empty when all is well."""
    # A quick pass on exact types first: well-formed records, the usual case, cost a
    # type lookup per field. Only a record that fails it is examined field by field.
    exact = [(f.name, _EXACT.get(f.type)) for f in fields]
    problems: list[Problem] = []
    for index, record in enumerate(records):
        if type(record) is dict and len(record) == len(exact):
            for name, types in exact:
                value = record.get(name, _MISSING)
                kind = type(value)
                if types is None or kind not in types or (kind is float and value - value):
                    break
            else:
                continue
        problems.extend(_problems(index, record, fields))
    return problems


def _problems(index: int, record: Any, fields: Sequence[Field]) -> list[Problem]:
    if not isinstance(record, dict):
        return [Problem(index, "", f"expected an object, got {_json_type(record)}")]
    problems = []
    for f in fields:
        if f.name not in record:
            problems.append(Problem(index, f.name, "field required"))
            continue
        problem = _check_value(record[f.name], f)
        if problem:
            problems.append(Problem(index, f.name, problem))
    known = {f.name for f in fields}
    problems.extend(
        Problem(index, str(name), "unknown field") for name in record if name not in known
    )
    return problems


def _check_value(value: Any, f: Field) -> str | None:
    accepted = _ACCEPTS.get(f.type, (object,))
    # JSON true is not a number, and a whole number is fine where a float is expected.
    if isinstance(value, bool) and bool not in accepted:
        return f"expected {_TYPE_WORD.get(f.type, f.type)}, got {_json_type(value)}"
    if not isinstance(value, accepted):
        return f"expected {_TYPE_WORD.get(f.type, f.type)}, got {_json_type(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        str: "a string",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


@dataclass
class Scorer:
    """Scores for one model version.

    ``fields`` is the model's input signature; ``reason_texts`` maps feature names to
    the plain-language reason kept with the feature definition.
    """

    name: str
    version: str
    model: Any
    fields: list[Field]
    reason_texts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fast = _FastLightGBM.build(self.model, self.fields)
        columns = self._fast.columns if self._fast else []
        self._texts = [self.reason_texts.get(c, c.replace("_", " ")) for c in columns]

    @property
    def explains(self) -> bool:
        """Whether scores come with reasons."""
        return self._fast is not None

    def score(self, records: Sequence[Mapping[str, Any]], *, reasons: bool = True) -> list[dict]:
        """Score validated records: one dict per record with score, model, version, reasons."""
        if not records:
            return []
        if self._fast is None:
            probabilities = self._slow_scores(records)
            contributions = None
        else:
            matrix = self._fast.matrix(records)
            probabilities, contributions = self._fast.predict(matrix, reasons=reasons)
        if contributions is None:
            return [
                {"score": score, "model": self.name, "version": self.version}
                for score in probabilities.tolist()
            ]
        # The features that push the score up most come first: those are the reasons a
        # payment is held or an applicant declined.
        top = np.argsort(-contributions, axis=1, kind="stable")[:, :TOP_REASONS]
        pushes = np.take_along_axis(contributions, top, axis=1).tolist()
        assert self._fast is not None
        columns, texts = self._fast.columns, self._texts
        return [
            {
                "score": score,
                "model": self.name,
                "version": self.version,
                "reasons": [
                    {
                        "feature": columns[index],
                        "value": record[columns[index]],
                        "direction": "raises" if push > 0 else "lowers",
                        "contribution": push,
                        "text": texts[index],
                    }
                    for index, push in zip(indices, pushed, strict=True)
                ],
            }
            for score, record, indices, pushed in zip(
                probabilities.tolist(), records, top.tolist(), pushes, strict=True
            )
        ]

    def _slow_scores(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        import pandas as pd

        frame = pd.DataFrame.from_records(list(records), columns=[f.name for f in self.fields])
        return np.asarray(self.model.predict_proba(frame))[:, 1]


@dataclass
class _FastLightGBM:
    """The pieces of an encoder + LightGBM pipeline, for scoring without pandas."""

    booster: Any
    columns: list[str]  # in the order the booster sees them
    codes: dict[str, dict[str, float]]  # category -> code, per string column
    paths: np.ndarray = field(init=False)  # (trees, leaves, features) path attributions
    bias: float = field(init=False)  # sum of the root values
    leaf_values: np.ndarray = field(init=False)  # (trees, leaves) outputs
    from_leaves: bool = field(init=False)  # scores from leaf_values equal LightGBM's

    def __post_init__(self) -> None:
        dumped = self.booster.dump_model()
        self.paths, self.bias, self.leaf_values = _tables(dumped, len(self.columns))
        trees, width = self.leaf_values.shape
        self._leaf_offsets = np.arange(trees) * width  # into the flattened leaf values
        self.from_leaves = dumped.get("objective", "").startswith("binary") and self._agrees()

    def _agrees(self) -> bool:
        # One LightGBM call (leaf indices) then gives both score and reasons; trust it
        # only where it reproduces LightGBM's own scores bit for bit.
        probe = np.random.default_rng(0).normal(0, 100, size=(64, len(self.columns)))
        probe[:8] = 0.0
        leaves = self._leaves(probe)
        return bool(np.array_equal(self._leaf_scores(leaves), self.scores(probe)))

    def _leaves(self, matrix: np.ndarray) -> np.ndarray:
        leaves = self.booster.predict(matrix, pred_leaf=True, num_threads=1)
        return np.asarray(leaves, dtype=np.int64).reshape(len(matrix), -1)

    def _leaf_scores(self, leaves: np.ndarray) -> np.ndarray:
        # A running sum along each row: one tree after another, in LightGBM's order, so
        # the result is the same to the bit (a plain sum may pair terms up differently).
        outputs = np.take(self.leaf_values, leaves + self._leaf_offsets)
        raw = np.cumsum(outputs, axis=1)[:, -1]
        # The C library's exp, as LightGBM's own sigmoid uses: numpy's vectorised exp
        # can differ from it in the last bit on some processors.
        return np.array([1.0 / (1.0 + math.exp(-value)) for value in raw.tolist()])

    def predict(self, matrix: np.ndarray, *, reasons: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and, with ``reasons``, per-feature contributions to the raw score."""
        if not reasons:
            return self.scores(matrix), None
        leaves = self._leaves(matrix)
        scores = self._leaf_scores(leaves) if self.from_leaves else self.scores(matrix)
        return scores, self._contributions(leaves)

    @classmethod
    def build(cls, model: Any, fields: Sequence[Field]) -> _FastLightGBM | None:
        steps = getattr(model, "steps", None)
        if not steps or len(steps) != 2:
            return None
        encode, estimator = steps[0][1], steps[1][1]
        booster = getattr(estimator, "booster_", None)
        if booster is None or type(encode).__name__ != "ColumnTransformer":
            return None
        columns = [str(c) for c in encode.get_feature_names_out()]
        codes: dict[str, dict[str, float]] = {}
        for name, transformer, selected in encode.transformers_:
            if name == "remainder":
                continue
            if type(transformer).__name__ != "OrdinalEncoder":
                return None
            for column, categories in zip(selected, transformer.categories_, strict=True):
                codes[str(column)] = {str(c): float(i) for i, c in enumerate(categories)}
        if sorted(columns) != sorted(f.name for f in fields):
            return None
        return cls(booster, columns, codes)

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        matrix = np.empty((len(records), len(self.columns)), dtype=np.float64)
        for j, column in enumerate(self.columns):
            codes = self.codes.get(column)
            if codes is None:
                matrix[:, j] = [record[column] for record in records]
            else:
                # Categories never seen in training get -1, as the encoder was told to.
                matrix[:, j] = [codes.get(record[column], -1.0) for record in records]
        return matrix

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, num_threads=1))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score, one row per record."""
        return self._contributions(self._leaves(matrix))

    def _contributions(self, leaves: np.ndarray) -> np.ndarray:
        trees, width, features = self.paths.shape
        if len(leaves) < _SPARSE_FROM:
            return self.paths[np.arange(trees), leaves].sum(axis=1)
        # For batches, a sparse one-hot of the leaves times the table: no temporary of
        # rows x trees x features, about 4x faster at 64 rows.
        from scipy.sparse import csr_matrix

        columns = (leaves + np.arange(trees) * width).ravel()
        one_hot = csr_matrix(
            (np.ones(columns.size), columns, np.arange(0, columns.size + 1, trees)),
            shape=(len(leaves), trees * width),
        )
        return np.asarray(one_hot @ self.paths.reshape(trees * width, features))


def _tables(dumped: dict[str, Any], features: int) -> tuple[np.ndarray, float, np.ndarray]:
    trees = dumped["tree_info"]
    leaves = max(tree["num_leaves"] for tree in trees)
    table = np.zeros((len(trees), leaves, features))
    outputs = np.zeros((len(trees), leaves))
    bias = 0.0
    for index, tree in enumerate(trees):
        root = tree["tree_structure"]
        bias += _node_value(root)
        # Walk every root-to-leaf path, crediting each split's feature with the change.
        stack: list[tuple[dict[str, Any], np.ndarray]] = [(root, np.zeros(features))]
        while stack:
            node, credit = stack.pop()
            if "split_feature" not in node:
                table[index, node.get("leaf_index", 0)] = credit
                outputs[index, node.get("leaf_index", 0)] = node["leaf_value"]
                continue
            for child in (node["left_child"], node["right_child"]):
                step = credit.copy()
                step[node["split_feature"]] += _node_value(child) - _node_value(node)
                stack.append((child, step))
    return table, bias, outputs


def _node_value(node: dict[str, Any]) -> float:
    return float(node["internal_value"] if "split_feature" in node else node["leaf_value"])
