"""Every table model, imported together so foreign keys between areas resolve."""

from backend.devices.models import DatastreamValue, Device
from backend.orgs.models import Organization, Role, User
from backend.templates.models import Datastream, EventDef, Template

__all__ = ["Datastream", "DatastreamValue", "Device", "EventDef", "Organization", "Role", "Template", "User"]
