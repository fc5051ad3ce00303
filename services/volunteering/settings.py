from shared.settings import Settings


class VolunteeringSettings(Settings):
    pass
