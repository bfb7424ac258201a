"""A thermostat that speaks Blynk's MQTT API: run it against `make run` after the import.

    .venv/bin/python examples/thermostat_device.py <TOKEN> [HOST] [PORT]
"""

import random
import sys
import time

from device_sdk import Device, NotConnectedError

token = sys.argv[1]
host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
port = int(sys.argv[3]) if len(sys.argv) > 3 else 1883
device = Device(token, host=host, port=port, template_id="TMPLthermo01", firmware_version="1.0.0")


@device.on_write("Power")
def power(value: str) -> None:
    print(f"Power set to {value}")


with device:
    device.sync("Power")
    temperature = 21.0
    while True:
        temperature += random.uniform(-0.2, 0.2)
        try:
            device.write("Temperature", round(temperature, 2))
        except NotConnectedError:
            print("offline; the SDK is reconnecting")  # values are not queued while offline
        time.sleep(2)
