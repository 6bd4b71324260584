"""What the device keeps under the chain of trust: a keystore and a certificate store, each in
A/B slots and each with its own anti-rollback counter, and the order an update installs them."""

from __future__ import annotations

import enum

from firmware_model.image.sections import ImageType


class Component(enum.Enum):
    """What the device keeps in A/B slots, each with its own anti-rollback counter."""

    KEYSTORE = "keystore"
    STORE = "store"

    # Members are singletons compared by identity: hash them so too (Enum's own __hash__ runs
    # Python code, and the update path looks components up in dicts many times).
    __hash__ = object.__hash__

    @property
    def image_type(self) -> ImageType:
        """The image type a slot of this component holds."""
        return _IMAGE_TYPES[self]

    @classmethod
    def for_image_type(cls, image_type: int) -> Component | None:
        """The component that holds images of `image_type`, or None if the device keeps none."""
        return _BY_IMAGE_TYPE.get(image_type)


_IMAGE_TYPES = {Component.KEYSTORE: ImageType.TrustedKeystore,
                Component.STORE: ImageType.UpdateCertStore}
_BY_IMAGE_TYPE = {int(image_type): component for component, image_type in _IMAGE_TYPES.items()}


#: The order in which an update verifies and writes components: a new keystore first, since
#: the other images of the update are verified with the keys it carries.
INSTALL_ORDER = (Component.KEYSTORE, Component.STORE)
