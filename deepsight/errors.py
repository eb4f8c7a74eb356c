"""Errors that name what the user must fix (a file, a row, a config key)."""


class DeepSightError(Exception):
    """Base class of errors caused by user input or environment, reported without a traceback."""


class MissingDataError(DeepSightError, FileNotFoundError):
    """A data file a scan or benchmark needs does not exist; the message names the file and the key."""


class DataFormatError(DeepSightError, ValueError):
    """A data file exists but a row or field is malformed; the message names file and row."""


class ConfigError(DeepSightError, ValueError):
    """A config value is invalid; the message names the key."""
