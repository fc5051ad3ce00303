"""Recovery groups (recurring, RFC 5545), their sessions, sober events, registrations with waitlists, attendance."""

SERVICE = "gatherings"
SCHEMA = "gatherings"
