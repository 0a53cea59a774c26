"""A registry of classes by their `name`, for the pieces a setting chooses by name.

    STRATEGIES = Registry("selection.strategy", "strategy")
    @STRATEGIES.register            # or STRATEGIES.register(MyStrategy): one line adds one
    class MyStrategy: name = "mine"; ...
    STRATEGIES.lookup("mine")       # the class; ConfigError naming the setting and the known names

A plain dict underneath (`in`, iteration, `del` in tests); no import side effects beyond the
`register` lines of the module that owns it.
"""
from __future__ import annotations

from emotionnas.errors import ConfigError


class Registry(dict):
    def __init__(self, setting: str, what: str):
        super().__init__()
        self.setting, self.what = setting, what

    def register(self, cls: type) -> type:
        self[cls.name] = cls
        return cls

    def lookup(self, name: str) -> type:
        """The class registered as `name`; ConfigError naming the setting and the known names."""
        if name not in self:
            raise ConfigError(f"{self.setting}: unknown {self.what} {name!r}; known: {sorted(self)}")
        return self[name]
