"""Every table model, imported together so foreign keys between areas resolve."""

from backend.device_api.models import DeviceFile, DeviceQuota
from backend.devices.models import DatastreamValue, Device
from backend.orgs.models import Organization, Role, User
from backend.templates.models import Datastream, EventDef, Template

__all__ = ["Datastream", "DatastreamValue", "Device", "DeviceFile", "DeviceQuota", "EventDef", "Organization",
           "Role", "Template", "User"]
