"""An app's manifest (`app_manifest.json`) as the device's SysEvent reads it: the app's name and
the two capabilities that decide what SysEvent lets the app do.

    "Capabilities": {
        "SystemEventNotifications": true,     # the app may register for update events
        "SoftwareUpdateDeferral": true        # ... and defer and resume an update
    }

(Microsoft, "Defer device updates": both are needed to be told and to defer; either missing makes
the calls that need it fail with EACCES, see `firmware_model.device.sysevent`.)
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from pathlib import Path

from firmware_model.errors import AppManifestError
from policy.files import read_regular

#: The capability names, as app_manifest.json spells them.
SYSTEM_EVENT_NOTIFICATIONS = "SystemEventNotifications"
SOFTWARE_UPDATE_DEFERRAL = "SoftwareUpdateDeferral"
#: Nobody has more need of an app manifest than this (a real one is a few hundred bytes).
MANIFEST_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AppManifest:
    """What SysEvent needs of an app manifest: the app's name and its two SysEvent capabilities."""

    name: str
    system_event_notifications: bool = False
    software_update_deferral: bool = False

    @classmethod
    def deferring(cls, name: str) -> AppManifest:
        """An app with both capabilities: told of updates, and allowed to defer them."""
        return cls(name, system_event_notifications=True, software_update_deferral=True)

    @property
    def capabilities(self) -> list[str]:
        """The SysEvent capabilities it has, by their manifest names."""
        held = [(SYSTEM_EVENT_NOTIFICATIONS, self.system_event_notifications),
                (SOFTWARE_UPDATE_DEFERRAL, self.software_update_deferral)]
        return [name for name, has in held if has]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name,
                "capabilities": {SYSTEM_EVENT_NOTIFICATIONS: self.system_event_notifications,
                                 SOFTWARE_UPDATE_DEFERRAL: self.software_update_deferral}}


def parse_app_manifest(data: bytes, what: str) -> AppManifest:
    """The manifest in `data` (UTF-8 JSON, a byte-order mark allowed); AppManifestError naming
    `what` if it is not an object with a non-empty printable string `Name`, or if `Capabilities`
    is not an object or holds a SysEvent capability that is not `true`/`false`. Other keys and
    other capabilities are not looked at."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AppManifestError(f"{what}: not a JSON app manifest ({error})") from None
    if not isinstance(document, dict):
        raise AppManifestError(f"{what}: an app manifest is a JSON object")
    name = document.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise AppManifestError(f"{what}: the app manifest has no Name")
    if not name.isprintable():
        raise AppManifestError(f"{what}: the app's Name {json.dumps(name)} holds control "
                               "characters")
    capabilities = document.get("Capabilities", {})
    if not isinstance(capabilities, dict):
        raise AppManifestError(f"{what}: Capabilities must be a JSON object")
    return AppManifest(name.strip(), _flag(capabilities, SYSTEM_EVENT_NOTIFICATIONS, what),
                       _flag(capabilities, SOFTWARE_UPDATE_DEFERRAL, what))


def _flag(capabilities: dict[str, object], key: str, what: str) -> bool:
    value = capabilities.get(key, False)
    if not isinstance(value, bool):
        raise AppManifestError(f"{what}: Capabilities.{key} must be true or false, "
                               f"not {json.dumps(value)}")
    return value


def read_app_manifest(path: Path) -> AppManifest:
    """The manifest in the file `path` (see `parse_app_manifest`); OSError if it cannot be read,
    AppManifestError if it is larger than any manifest (64 KiB)."""
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except OSError as error:
        if error.errno != errno.EFBIG:
            raise
        raise AppManifestError(f"{path}: larger than {MANIFEST_LIMIT} bytes: not an app "
                               "manifest") from None
    return parse_app_manifest(data, str(path))
