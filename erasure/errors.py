"""The error every bad input raises: stage CLIs and the Snakefile print its message as one line."""


class ConfigError(ValueError):
    """A bad configuration value or input file; the message names the field or file and the fix."""


class DiskFull(OSError):
    """The disk filled up while a stage wrote an output; the message names the file and the space left."""
