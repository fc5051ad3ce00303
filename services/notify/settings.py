from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class NotifySettings(Settings):
    # The relay messages go to: smtp://user:pass@host:port (``?starttls=1`` to upgrade), smtps:// for implicit TLS.
    smtp_url: str = "smtp://127.0.0.1:25"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    notify_from: str = "no-reply@localhost"
    # What a message calls the center when its site has set no message name (PUT /site/messages): a site's full
    # name often says "Recovery", which a lock screen shows others.
    notify_site_name: str = "your center"
    # Where the links in a message lead (the verification page, one-click unsubscribe); unset: this service's URL.
    notify_public_url: str | None = None
    # The volunteer page every message links to; unset: the pages service's /volunteer.
    notify_page_url: str | None = None
    # How often the reminder scheduler looks for due reminders, and how many it takes at once.
    remind_interval_s: float = Field(default=5.0, gt=0)
    remind_batch_size: int = Field(default=200, ge=1, le=5000)
    verification_ttl_h: float = Field(default=24.0, gt=0)
    # How often the sender looks for due messages (it is also woken when this process queues some), how many it
    # leases at once, and over how many SMTP connections (kept open) it sends them.
    send_interval_s: float = Field(default=0.5, gt=0)
    send_batch_size: int = Field(default=200, ge=1, le=1000)
    send_connections: int = Field(default=4, ge=1, le=32)
    # A message being sent is leased for this long; a sender that died mid-send leaves it to be claimed again.
    send_lease_s: float = Field(default=60.0, gt=0)
    # Temporary SMTP failures retry after base * 2^attempt (with jitter), up to this many attempts.
    retry_base_s: float = Field(default=5.0, gt=0)
    # ... and never more than this apart, so a relay that is back is used again within it.
    retry_max_s: float = Field(default=900.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)

    def public_url(self) -> str:
        return (self.notify_public_url or self.url_of("notify")).rstrip("/")

    def page_url(self) -> str:
        if self.notify_page_url:
            return self.notify_page_url
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.pages_port}/volunteer"
