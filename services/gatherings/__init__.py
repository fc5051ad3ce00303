SERVICE = "gatherings"
SCHEMA = "gatherings"
