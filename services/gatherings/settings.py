from shared.settings import Settings


class GatheringsSettings(Settings):
    pass
