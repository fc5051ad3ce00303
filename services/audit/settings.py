from __future__ import annotations

from shared.settings import Settings


class AuditSettings(Settings):
    verify_chunk_rows: int = 5_000
    # Log entries per projection batch when ``rcc reports rebuild`` replays the log.
    rebuild_chunk_rows: int = 5_000
