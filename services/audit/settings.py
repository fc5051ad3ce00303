from __future__ import annotations

from shared.settings import Settings


class AuditSettings(Settings):
    verify_chunk_rows: int = 5_000
