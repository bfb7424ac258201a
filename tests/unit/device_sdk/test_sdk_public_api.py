"""The public surface of device_sdk is deliberate: pinned names, docstrings, type marker."""

from __future__ import annotations

import inspect
from pathlib import Path

import device_sdk

PUBLIC_NAMES = [
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


def _public_objects() -> list[tuple[str, object]]:
    return [(name, getattr(device_sdk, name)) for name in device_sdk.__all__ if name != "__version__"]


def _public_members(cls: type) -> list[tuple[str, object]]:
    return [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, (property, classmethod)))
    ]


def test_all_is_pinned() -> None:
    assert sorted(device_sdk.__all__) == sorted(PUBLIC_NAMES)


def test_every_public_name_exists_and_claims_the_package() -> None:
    for name, obj in _public_objects():
        assert getattr(obj, "__module__", None) == "device_sdk", name


def test_nothing_else_public_leaks_from_the_package() -> None:
    public = {name for name in vars(device_sdk) if not name.startswith("_")}
    assert public == set(device_sdk.__all__) - {"__version__"}


def test_exception_tree_has_one_root() -> None:
    errors = [obj for _, obj in _public_objects() if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert all(issubclass(err, device_sdk.DeviceError) for err in errors)
    assert issubclass(device_sdk.InvalidTokenError, ValueError)
    assert issubclass(device_sdk.DeviceTimeoutError, TimeoutError)
    assert issubclass(device_sdk.ConnectTimeoutError, device_sdk.DeviceTimeoutError)


def test_every_public_class_and_member_has_a_docstring() -> None:
    for name, obj in _public_objects():
        assert inspect.getdoc(obj), name
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            for member_name, member in _public_members(obj):
                target = member.fget if isinstance(member, property) else member
                assert inspect.getdoc(target), f"{name}.{member_name}"


def test_public_methods_document_their_arguments_google_style() -> None:
    for name, obj in _public_objects():
        if not isinstance(obj, type) or issubclass(obj, BaseException):
            continue
        for member_name, member in _public_members(obj):
            func = member.__func__ if isinstance(member, classmethod) else member
            if isinstance(func, property) or not inspect.isfunction(func):
                continue
            params = [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]
            doc = inspect.getdoc(func) or ""
            if params:
                assert "Args:" in doc, f"{name}.{member_name} has no Args: section"
            for param in params:
                assert f"{param}:" in doc, f"{name}.{member_name} does not document {param!r}"


def test_constructor_arguments_are_documented() -> None:
    for name, obj in _public_objects():
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            params = [p for p in inspect.signature(obj).parameters]
            doc = inspect.getdoc(obj) or ""
            for param in params:
                assert f"{param}:" in doc, f"{name}() does not document {param!r}"


def test_package_ships_a_py_typed_marker() -> None:
    assert (Path(device_sdk.__file__).parent / "py.typed").is_file()
