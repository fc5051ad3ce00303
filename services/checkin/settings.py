from __future__ import annotations

from shared.settings import Settings


class CheckinSettings(Settings):
    kiosk_code_length: int = 6
    # How often open visits past their site's closing time are closed.
    auto_close_interval_s: float = 60.0
    # Code checks a kiosk may make (a person types one code per visit): a guesser learns little per minute.
    # 0 turns the limit off.
    code_checks_per_minute: int = 30
    code_checks_burst: int = 10
