from __future__ import annotations

from shared.settings import Settings


class AuditSettings(Settings):
    verify_chunk_rows: int = 5_000
    # Log entries per projection batch when ``rcc reports rebuild`` replays the log.
    rebuild_chunk_rows: int = 5_000
    # Complementary suppression (min_cell) over more counts than this, every report of the range together, is
    # refused (422 suppression_too_large): choosing them takes time in proportion. A year of 10 sites is ~8,700.
    report_suppression_max_cells: int = 40_000
