from __future__ import annotations

from shared.settings import Settings


class CheckinSettings(Settings):
    kiosk_code_length: int = 6
    # How often open visits past their site's closing time are closed.
    auto_close_interval_s: float = 60.0
