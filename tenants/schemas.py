"""Answer shapes of the organisations API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OrganizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    name: str
    slug: str
    country: str
    default_locale: str
    timezone: str
    currency: str
    created_at: datetime
