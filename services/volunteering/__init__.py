"""Volunteering: peer leaders' roles, trainings and profiles; shifts (single and recurring) with capacity and a
waitlist; self-service sign-up; hours worked (from kiosk check-ins) and their approval; stipends (policy versions,
monthly periods, caps, an append-only ledger, payouts: the ``stipends`` sub-package)."""

SERVICE = "volunteering"
SCHEMA = "volunteering"
