"""Request and response bodies of the order API: strict types, unknown fields refused, bounded sizes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

BIGINT_MAX = 2**63 - 1
MAX_CENTS = 10**12  # keeps quantity * price * items far inside bigint


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    quantity: int = Field(gt=0, le=10_000)
    unit_price_cents: int = Field(ge=0, le=MAX_CENTS)


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    customer_id: Annotated[int, Field(gt=0, le=BIGINT_MAX)]
    items: list[ItemIn] = Field(min_length=1, max_length=100)


class ItemOut(BaseModel):
    sku: str
    quantity: int
    unit_price_cents: int


class OrderOut(BaseModel):
    id: int
    customer_id: int
    status: str
    total_cents: int
    created_at: datetime
    items: list[ItemOut]
    event_id: str | None = None
