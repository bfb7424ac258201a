"""Builds the Blynk.Air services once, for the app's lifespan, the ingest and the scheduler."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, tzinfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg_pool import AsyncConnectionPool

from backend.devices.context import DeviceServices
from backend.devices.data import Publisher
from backend.devices.place import device_zone
from backend.devices.registry import DeviceRegistry
from backend.ota.delivery import Delivery
from backend.ota.download import DownloadService
from backend.ota.rollout import Rollout
from backend.ota.services import FirmwareService, ShipmentService
from backend.ota.storage import FileKeyStore, FirmwareFiles
from backend.settings import Settings
from ota import DownloadTokens, Signer


@dataclass
class OtaServices:
    """Everything Blynk.Air needs at run time (the ``ota`` dependency)."""

    pool: AsyncConnectionPool
    signer: Signer
    firmware: FirmwareService
    shipments: ShipmentService
    delivery: Delivery
    download: DownloadService
    rollout: Rollout

    @classmethod
    def build(
        cls,
        pool: AsyncConnectionPool,
        publisher: Publisher,
        settings: Settings,
        secret_key: str,
        registry: DeviceRegistry,
        devices: DeviceServices,
    ) -> OtaServices:
        """Wire the services; loads (or makes, on first start) the signing key."""
        signer = Signer.from_store(FileKeyStore(settings.data_dir / "ota-signing-key.pem"))
        tokens = DownloadTokens(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"openblynk ota download tokens").derive(
                secret_key.encode()
            )
        )
        files = FirmwareFiles(settings.data_dir / "firmware")
        delivery = Delivery(pool, publisher, tokens)
        firmware = FirmwareService(pool, files, signer, settings.firmware_max_bytes)

        async def zone_of(device_id: int) -> tzinfo:
            device = await registry.get(device_id)
            return UTC if device is None else await device_zone(device, devices.data, devices.meta)

        return cls(
            pool=pool,
            signer=signer,
            firmware=firmware,
            shipments=ShipmentService(pool, firmware, delivery, settings.ota_public_url),
            delivery=delivery,
            download=DownloadService(delivery, files, tokens),
            rollout=Rollout(pool, delivery, zone_of),
        )

    def public_key_document(self) -> dict[str, str]:
        """The signing key devices pin: raw Ed25519 public key (base64) and PEM."""
        return {
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(self.signer.public_key).decode(),
            "pem": self.signer.public_pem,
            "signed_message": '["openblynk-fw-v1",sha256_hex,size,type,ver]',
        }
