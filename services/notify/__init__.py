"""Notifications: the only contact data in the system (addresses, with consent, in schema ``notify``), double opt-in
by a verification message, and delivery of messages by e-mail from a delivery table after commit."""

SERVICE = "notify"
SCHEMA = "notify"
