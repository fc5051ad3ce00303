SERVICE = "volunteering"
SCHEMA = "volunteering"
