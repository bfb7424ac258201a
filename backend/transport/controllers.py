"""HTTP routes of the transports: the CA certificate devices pin for MQTT over TLS."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from backend.errors import NotFoundError
from backend.transport.tls import TlsFiles


@get("/ca.pem", media_type="application/x-pem-file")
async def ca_certificate(tls: NamedDependency[TlsFiles | None]) -> Response[bytes]:
    """The CA that signed the MQTT TLS certificate, for devices to pin."""
    files = tls
    if files is None or files.cafile is None or not files.cafile.is_file():
        raise NotFoundError("no CA certificate is configured (set OPENBLYNK_TLS_CAFILE)")
    return Response(
        files.cafile.read_bytes(),
        media_type="application/x-pem-file",
        headers={"Content-Disposition": 'inline; filename="ca.pem"'},
    )


__all__ = ["ca_certificate"]
