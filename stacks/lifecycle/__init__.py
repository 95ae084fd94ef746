"""Lifecycle capability: client presence (connect/disconnect/subscriptions) and the registry inventory."""

from stacks.lifecycle.presence import Presence
from stacks.lifecycle.registry import RegistryInventory

__all__ = ["Presence", "RegistryInventory"]
