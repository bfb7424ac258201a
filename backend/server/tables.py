"""The SQLModel table registry: every area's tables, imported together so foreign keys between
areas resolve. Whatever opens ORM sessions imports this module first (the app's container, the
CLI's commands, the tests); the bottom's ``backend.db`` cannot, as it imports no area."""

from backend.automations.models import Automation, AutomationRun, AutomationStep
from backend.device_api.models import DeviceFile, DeviceQuota
from backend.devices.models import DatastreamValue, Device
from backend.notifications.models import Notification, NotificationPref
from backend.orgs.models import Organization, Role, User
from backend.templates.models import Datastream, EventDef, Template
from backend.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "Automation",
    "AutomationRun",
    "AutomationStep",
    "Datastream",
    "DatastreamValue",
    "Device",
    "DeviceFile",
    "DeviceQuota",
    "EventDef",
    "Notification",
    "NotificationPref",
    "Organization",
    "Role",
    "Template",
    "User",
    "Webhook",
    "WebhookDelivery",
]
