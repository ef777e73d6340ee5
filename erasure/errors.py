"""The error every bad input raises: stage CLIs and the Snakefile print its message as one line."""


class ConfigError(ValueError):
    """A bad configuration value or input file; the message names the field or file and the fix."""
