"""A thermostat that speaks Blynk's MQTT API: run it against `make run` after the import.

    .venv/bin/python examples/thermostat_device.py <TOKEN> [HOST] [PORT]

It feeds every widget of the Thermostat template's dashboard (examples/thermostat.json):
Temperature (gauge and chart) and Humidity (value) every 2 s, Power (switch) back to the
server whenever it changes, and lines to the Terminal; it answers what is typed into the
terminal ("help" lists the commands).
"""

import random
import sys
import threading
import time

from device_sdk import Device, NotConnectedError

token = sys.argv[1]
host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
port = int(sys.argv[3]) if len(sys.argv) > 3 else 1883
device = Device(token, host=host, port=port, template_id="TMPLthermo01", firmware_version="1.0.0")
state = {"power": 0, "temperature": 19.0, "humidity": 45.0}
lock = threading.Lock()


def say(line: str) -> None:
    """A line on the dashboard's terminal (and on this console)."""
    print(line)
    try:
        device.write("Terminal", line)
    except NotConnectedError:
        pass  # values are not queued while offline


@device.on_write("Power")
def power(value: str) -> None:
    with lock:
        state["power"] = 1 if value.strip() == "1" else 0
    print(f"Power set to {value}")
    device.write("Power", state["power"])  # confirm: the switch shows what the device did
    say(f"heating {'on' if state['power'] else 'off'}")


@device.on_write("Terminal")
def command(value: str) -> None:
    words = value.strip().lower()
    with lock:
        now = dict(state)
    if words == "status":
        say(f"{now['temperature']:.1f} °C, {now['humidity']:.0f} % humidity, heating {'on' if now['power'] else 'off'}")
    elif words == "help":
        say("commands: status, help")
    else:
        say(f"unknown command {value!r}; try help")


@device.on_connect
def connected() -> None:
    device.sync("Power")  # the switch's last value, after every (re)connection
    say("thermostat 1.0.0 online; type help")


with device:
    while True:
        with lock:
            target = 23.0 if state["power"] else 18.0  # heating on warms the room, off lets it cool
            state["temperature"] += (target - state["temperature"]) * 0.05 + random.uniform(-0.1, 0.1)
            state["humidity"] = min(90.0, max(20.0, state["humidity"] + random.uniform(-0.5, 0.5)))
            values = {"Temperature": round(state["temperature"], 2), "Humidity": round(state["humidity"], 1)}
        try:
            device.write_many(values)
        except NotConnectedError:
            print("offline; the SDK is reconnecting")  # values are not queued while offline
        time.sleep(2)
