"""Device Defender: audit configuration, scheduled audit, mitigation actions and the functions acting on findings."""

from stacks.defender.defender import DeviceDefender

__all__ = ["DeviceDefender"]
