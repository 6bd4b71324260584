"""What the device keeps under the chain of trust: a keystore and a certificate store, each in
A/B slots and each with its own anti-rollback counter, and the order an update installs them."""

from __future__ import annotations

import enum

from firmware_model.image.sections import ImageType


class Component(enum.Enum):
    """What the device keeps in A/B slots, each with its own anti-rollback counter."""

    KEYSTORE = "keystore"
    STORE = "store"

    @property
    def image_type(self) -> ImageType:
        """The image type a slot of this component holds."""
        if self is Component.KEYSTORE:
            return ImageType.TrustedKeystore
        return ImageType.UpdateCertStore

    @classmethod
    def for_image_type(cls, image_type: int) -> Component | None:
        """The component that holds images of `image_type`, or None if the device keeps none."""
        return next((c for c in cls if c.image_type == image_type), None)


#: The order in which an update verifies and writes components: a new keystore first, since
#: the other images of the update are verified with the keys it carries.
INSTALL_ORDER = (Component.KEYSTORE, Component.STORE)
