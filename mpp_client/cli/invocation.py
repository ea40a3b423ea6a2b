"""One run of ``mpp``: the parsed arguments, where output goes, and the configuration."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from mpp_client.cli.config import Config
from mpp_client.cli.output import Output
from mpp_client.clock import SYSTEM_CLOCK, Clock

__all__ = ["Invocation"]


@dataclass
class Invocation:
    """What every command gets: ``args``, ``output``, the (lazily loaded) ``config`` and the
    ``clock`` every "now" and "today" comes from (tests pass a ``ManualClock`` to ``main``)."""

    args: argparse.Namespace
    output: Output
    clock: Clock = SYSTEM_CLOCK
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config.load()
        return self._config

    def warn_test_method(self) -> None:
        """Say so when the test payment method is on (commands that pay or look up)."""
        if self.config.test_method:
            self.output.warn(
                "the test payment method is enabled (tests and demos only: it pays "
                "mpp_client.testing servers and moves no money)"
            )
