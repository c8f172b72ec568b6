"""What a dataset's columns are and how checks should read them."""

from __future__ import annotations

import dataclasses
from typing import Mapping

import pyarrow as pa

#: Column kinds the checks understand.
NUMERIC, CATEGORICAL, DATETIME = "numeric", "categorical", "datetime"


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
        Kind (``numeric``, ``categorical``, ``datetime``) of every feature column.
    label : str or None
        Label column.
    id_column : str or None
        User id column.
    skipped : mapping of str to str
        Columns no check reads, with the reason.
    """

    columns: tuple[str, ...]
    types: Mapping[str, pa.DataType]
    kinds: Mapping[str, str]
    label: str | None = None
    id_column: str | None = None
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature columns, in file order."""
        return tuple(c for c in self.columns if c in self.kinds)

    def of_kind(self, kind: str) -> tuple[str, ...]:
        """Feature columns of one kind, in file order."""
        return tuple(c for c in self.features if self.kinds[c] == kind)

    @classmethod
    def build(cls, arrow_schema: pa.Schema, *, label: str | None,
              id_column: str | None) -> "ScanSchema":
        """Assign roles and kinds to the columns of ``arrow_schema``."""
        kinds, skipped = {}, {}
        for field in arrow_schema:
            if field.name in (label, id_column):
                continue
            kind = kind_of(field.type)
            if kind is None:
                skipped[field.name] = f"unsupported type {field.type}"
            else:
                kinds[field.name] = kind
        return cls(columns=tuple(arrow_schema.names),
                   types={f.name: f.type for f in arrow_schema}, kinds=kinds,
                   label=label, id_column=id_column, skipped=skipped)
