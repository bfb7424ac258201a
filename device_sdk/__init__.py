"""A Python device library for Blynk's MQTT device API (blynk.cloud or openblynk).

Example:
    >>> from device_sdk import Device
    >>> device = Device("AbCdEfGhIjKlMnOpQrStUvWxYz012345", host="blynk.cloud")

See ``device_sdk/README.md`` for a complete example. Errors form one tree rooted at
:class:`DeviceError` (see :mod:`device_sdk._exceptions`).
"""

from ._backoff import Backoff
from ._device import Device
from ._downlinks import Downlink, DownlinkQueue
from ._endpoint import Endpoint
from ._exceptions import (
    ConnectionLostError,
    ConnectTimeoutError,
    DeviceError,
    DeviceTimeoutError,
    InvalidTokenError,
    NotConnectedError,
    OutboxFullError,
    PublishRefusedError,
)
from ._ota import FirmwareImage, FirmwareOffer, FirmwareRejectedError, OtaAgent
from ._provisioning import Provisioned, ProvisioningServer, WifiNetwork
from ._token import AuthToken

__version__ = "0.1.0"

__all__ = [
    "AuthToken",
    "Backoff",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "Device",
    "DeviceError",
    "DeviceTimeoutError",
    "Downlink",
    "DownlinkQueue",
    "Endpoint",
    "FirmwareImage",
    "FirmwareOffer",
    "FirmwareRejectedError",
    "InvalidTokenError",
    "NotConnectedError",
    "OtaAgent",
    "OutboxFullError",
    "Provisioned",
    "ProvisioningServer",
    "PublishRefusedError",
    "WifiNetwork",
    "__version__",
]

for _name in __all__:  # show public names as device_sdk.X, not device_sdk._module.X
    if not _name.startswith("__"):
        globals()[_name].__module__ = "device_sdk"
del _name
