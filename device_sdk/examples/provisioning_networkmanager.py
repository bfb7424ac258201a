"""A device that is provisioned over Wi-Fi on a Linux board with NetworkManager.

Run it with the board's access point up (for example ``nmcli dev wifi hotspot ssid "Blynk Sprinkler"``
and the address 192.168.4.1); Blynk's app, the console's walk-through or ``openblynk provision``
then hands it the home network, a provisioning token and the server. The library runs no
command itself: the Wi-Fi hook below does, with ``nmcli``.
"""

from __future__ import annotations

import subprocess

from device_sdk import Device, ProvisioningServer, WifiNetwork


class NetworkManager:
    """The Wi-Fi hook on a Linux board with NetworkManager (the library runs no command itself)."""

    def scan(self) -> list[WifiNetwork]:
        out = subprocess.run(
            ["nmcli", "-t", "-f", "SSID,BSSID,SIGNAL,SECURITY,CHAN", "dev", "wifi", "list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        nets = []
        for line in out.splitlines():
            ssid, *mac, signal, sec, chan = line.replace("\\:", "-").split(":")
            nets.append(
                WifiNetwork(ssid, ":".join(mac).replace("-", ":"), int(signal) // 2 - 100, sec or "OPEN", int(chan))
            )
        return nets

    def join(self, ssid: str, password: str) -> None:
        subprocess.run(["nmcli", "dev", "wifi", "connect", ssid, "password", password], check=True)


def main() -> None:
    wifi = NetworkManager()
    server = ProvisioningServer(wifi, template_id="TMPL0001", firmware_version="1.0.0", port=80)
    server.start()  # on the board's access point, 192.168.4.1
    config = server.wait()  # GET /config arrived
    server.stop()
    wifi.join(config.ssid, config.password)
    with Device(config.token, config.host, config.port, template_id="TMPL0001", firmware_version="1.0.0") as device:
        device.write("Status", "provisioned")  # the device is its user's now


if __name__ == "__main__":
    main()
