"""What a dataset's columns are and how checks should read them."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import pyarrow as pa

from ..errors import ConfigError

#: Column kinds the checks understand.
NUMERIC, CATEGORICAL, DATETIME = "numeric", "categorical", "datetime"


def is_vector_type(arrow_type: pa.DataType) -> bool:
    """Whether an Arrow type is a list of numbers (an embedding column).

    ``list``, ``large_list`` and ``fixed_size_list`` of integers or floats are vectors;
    lists of anything else (text, nested lists) are not.
    """
    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
            or pa.types.is_fixed_size_list(arrow_type)):
        return False
    value = arrow_type.value_type
    return pa.types.is_integer(value) or pa.types.is_floating(value)


def kind_of(arrow_type: pa.DataType) -> str | None:
    """The check-facing kind of an Arrow type, or ``None`` when no check reads it yet."""
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) \
            or pa.types.is_decimal(arrow_type):
        return NUMERIC
    if pa.types.is_boolean(arrow_type) or pa.types.is_string(arrow_type) \
            or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type):
        return CATEGORICAL
    if pa.types.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type)
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return DATETIME
    return None


@dataclasses.dataclass(frozen=True)
class ScanSchema:
    """The columns of a scan and the role of each.

    Attributes
    ----------
    columns : tuple of str
        All input columns in file order.
    types : mapping of str to pyarrow.DataType
        The typed (checked) Arrow type of each column.
    kinds : mapping of str to str
        Kind (``numeric``, ``categorical``, ``datetime``) of every scalar feature column.
    label : str or None
        Label column.
    id_column : str or None
        User id column.
    skipped : mapping of str to str
        Columns no check reads, with the reason.
    vectors : tuple of str
        Embedding columns (lists of numbers), in file order. They are features of the shared
        encoding (:class:`~poisonscan.encode.FeatureEncoder`), of the duplicate fingerprints
        and of the ``bounds`` vector rules; they are not in :attr:`kinds` (the per-column
        profile and the reference profile cover scalar columns only).
    text : tuple of str
        Categorical columns the user declared free text (``text_columns``): encoded as text
        whatever they look like. Others are detected on the sample by the encoder.
    """

    columns: tuple[str, ...]
    types: Mapping[str, pa.DataType]
    kinds: Mapping[str, str]
    label: str | None = None
    id_column: str | None = None
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)
    vectors: tuple[str, ...] = ()
    text: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        """Feature columns, in file order."""
        return tuple(c for c in self.columns if c in self.kinds)

    def of_kind(self, kind: str) -> tuple[str, ...]:
        """Feature columns of one kind, in file order."""
        return tuple(c for c in self.features if self.kinds[c] == kind)

    @classmethod
    def build(cls, arrow_schema: pa.Schema, *, label: str | None, id_column: str | None,
              text_columns: Iterable[str] = (), ignore_columns: Iterable[str] = ()
              ) -> "ScanSchema":
        """Assign roles and kinds to the columns of ``arrow_schema``.

        Parameters
        ----------
        arrow_schema : pyarrow.Schema
        label, id_column : str or None
        text_columns : iterable of str
            Columns to encode as free text (they must be text columns).
        ignore_columns : iterable of str
            Columns no check reads (carried to the outputs unchanged).

        Raises
        ------
        ConfigError
            A named column is not in the data, is the label or id column, or (for
            ``text_columns``) does not hold text.
        """
        text_columns, ignore_columns = tuple(text_columns), tuple(ignore_columns)
        cls._check_named(arrow_schema, text_columns, "text_columns", label, id_column)
        cls._check_named(arrow_schema, ignore_columns, "ignore_columns", label, id_column)
        kinds, skipped, vectors = {}, {}, []
        for field in arrow_schema:
            if field.name in (label, id_column):
                continue
            kind = kind_of(field.type)
            if field.name in ignore_columns:
                skipped[field.name] = "ignored (ignore_columns)"
            elif field.name in text_columns and kind != CATEGORICAL:
                raise ConfigError(f"text_columns: column {field.name!r} holds {field.type}, "
                                  "not text")
            elif is_vector_type(field.type):
                vectors.append(field.name)
            elif kind is None:
                skipped[field.name] = f"unsupported type {field.type}"
            else:
                kinds[field.name] = kind
        return cls(columns=tuple(arrow_schema.names),
                   types={f.name: f.type for f in arrow_schema}, kinds=kinds,
                   label=label, id_column=id_column, skipped=skipped, vectors=tuple(vectors),
                   text=tuple(c for c in arrow_schema.names
                              if c in text_columns and c not in ignore_columns))

    @staticmethod
    def _check_named(arrow_schema: pa.Schema, names: tuple[str, ...], option: str,
                     label: str | None, id_column: str | None) -> None:
        for name in names:
            if name not in arrow_schema.names:
                raise ConfigError(f"{option}: no column {name!r} in the data")
            if name in (label, id_column):
                raise ConfigError(f"{option}: {name!r} is the label or id column")
