"""DynamoDB attribute values: boto3's own codec; numbers exact (Decimal), whole ones as int."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from shared import bounds

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def serialize(value: Any) -> dict[str, Any]:
    """One attribute value (a float is stored as the exact Decimal of its repr)."""
    serialized: dict[str, Any] = dict(_SERIALIZER.serialize(_storable(value)))
    return serialized


def to_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): serialize(v) for k, v in item.items()}


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return bounds.number(value)
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Decimal → int when whole (exactly, at any size), else float; sets → sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value
