"""Constructs every capability builds on: function defaults, buffered queues, rules, monitoring, checks."""

from stacks.platform.platform import Platform

__all__ = ["Platform"]
