"""Report a temperature and follow a Power switch; the example from README.md.

Run it with BLYNK_AUTH_TOKEN set (and BLYNK_HOST / BLYNK_PORT for your own server).
"""

import os
import random
import time

from device_sdk import Device

device = Device(
    os.environ["BLYNK_AUTH_TOKEN"],
    host=os.environ.get("BLYNK_HOST", "blynk.cloud"),
    port=int(os.environ.get("BLYNK_PORT", "1883")),
    template_id="TMPL4xyzABCD",
    firmware_version="1.0.0",
)


@device.on_write("Power")
def power_changed(value: str) -> None:
    print("Power is", "on" if value == "1" else "off")


@device.on_connect
def ask_for_state() -> None:
    device.sync("Power")  # the server answers on downlink/ds/Power -> power_changed


with device:  # connects, subscribes downlink/#, publishes info/mcu
    for _ in range(3):
        device.write("Temperature", round(20 + random.random() * 5, 1))
        time.sleep(1)
