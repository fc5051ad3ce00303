from __future__ import annotations

from shared.settings import Settings


class PagesSettings(Settings):
    # A report or a CSV may take a while; a service that has not answered by then is reported as a 504.
    upstream_timeout_s: float = 30.0
    upstream_connect_timeout_s: float = 5.0
