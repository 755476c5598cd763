"""The base of every error lora-router reports as a message rather than a traceback (a bad
config, a model that cannot be built or loaded, training data that cannot be used)."""


class LoraRouterError(Exception):
    pass
