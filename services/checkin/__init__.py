"""Front-desk check-in: members (pseudonymous id + kiosk code; the only place a nickname lives), visits, occupancy."""

SERVICE = "checkin"
SCHEMA = "checkin"
