"""Errors whose message is meant for the user: what went wrong and what to do."""


class UotaError(Exception):
    """Base of every error uota reports to the user as one clear line."""


class BoardError(UotaError):
    """A board (real or virtual) is missing, unreachable or misbehaving."""


class UotaWarning(UserWarning):
    """Something a push did differently from what was asked, e.g. mpyFiles sent as .py."""
