"""Wire types of the ``/api`` device routes: a device's place in the tree and its tags."""

from __future__ import annotations

import msgspec

from backend.devices.directory import DeviceInfo
from backend.devices.tags import DeviceTagSet, TagUse

# What the services return is what goes on the wire: one class per shape, never a mirror.
DeviceOut = DeviceInfo
DeviceTagsOut = DeviceTagSet
TagUseOut = TagUse


class DeviceMoveIn(msgspec.Struct):
    org_id: int


class DeviceTagsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Every tag the device is to carry (the others are removed)."""

    tags: list[str]
