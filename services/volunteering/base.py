"""The declarative base of the ``volunteering`` schema: one metadata, so one Alembic history, for the tables of
volunteering proper (``models``) and of its stipends (``stipends.models``)."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase

from services.volunteering import SCHEMA
from shared.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)
    # Every class here maps a Table (declarative types it as any FromClause): insert() and update() take it.
    __table__: ClassVar[Table]
