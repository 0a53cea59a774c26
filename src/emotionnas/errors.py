"""Exceptions with one-line messages that name the offending file or value."""


class EmotionNASError(Exception):
    """Base class: every error the toolkit raises on bad input."""


class AudioError(EmotionNASError):
    """An audio file that cannot be used (unreadable, empty, silent, NaN, ...)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CorpusError(EmotionNASError):
    """A corpus folder or manifest that does not have the expected layout."""


class LeakageError(EmotionNASError):
    """A speaker appears in more than one of train / validation / test."""


class ConfigError(EmotionNASError):
    """A configuration value or file that is malformed."""
