"""The audit log: every event, append-only and hash-chained. (Reports, as projections of it, come later.)"""

SERVICE = "audit"
SCHEMA = "audit"
# The database role the service acts as: INSERT and SELECT on the log, nothing else.
DB_ROLE = "rcc_audit_writer"
