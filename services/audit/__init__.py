"""The audit log: every event, append-only and hash-chained; and the funders' reports, as projections of it that
can be rebuilt from it at any time."""

SERVICE = "audit"
SCHEMA = "audit"
# The database role the service acts as: INSERT and SELECT on the log (nothing else there); it also keeps the
# report projections (rp_*) and its outbox, inbox and idempotency tables.
DB_ROLE = "rcc_audit_writer"
