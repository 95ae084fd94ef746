"""The two ways the local runtime says no."""

from __future__ import annotations


class LocalRuntimeError(Exception):
    """The runtime cannot do what was asked (no cloud assembly, an unknown function name, a malformed
    scenario...). The message says what to do about it."""


class NotEmulated(LocalRuntimeError):
    """The app uses something this runtime does not emulate. It refuses rather than silently behave
    differently from AWS; the message names the feature and where the app uses it."""
