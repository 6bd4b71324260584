"""`imagetool verify`: is this image one a device would take, signer and content alike?

The image is authenticated the way a device authenticates it, against what the command is
given:
- `--cert CERT`: CERT is the only signing certificate trusted, for any image type but a
  TrustedKeystore; a keystore image must carry CERT as its signer certificate and CERT must
  carry the keystore-signing role (`trust.chain.open_keystore_signed_by`; who issued CERT is not
  checked: no root is given);
- `--root-pubkey ROOT`: a keystore image is authenticated against ROOT's hash, as a device that
  fused it does (`open_keystore`); any other image needs `--keystore KS` too, the keystore the
  device runs (itself authenticated against ROOT), whose keys must allow the image's signer for
  its type. A keystore image given with `--keystore` is still checked against ROOT: a device
  authenticates a new keystore against its fuses, not against the keystore it runs.
Then the image's content passes what a device requires before it writes it
(`agent.admission.admit_content`, at a fresh device's counters): the typed errors are the
device's, so the exit code is too (1 refused, 2 malformed).
"""

from __future__ import annotations

from pathlib import Path

from firmware_model.agent.admission import admit_content
from firmware_model.agent.decisions import peek
from firmware_model.image.keystore import Keyring, TrustedKey, root_key_hash
from firmware_model.image.package import ImagePackage
from firmware_model.image.sections import ImageType, image_type_name
from firmware_model.trust.chain import open_keystore, open_keystore_signed_by, verify_image
from policy.errors import UsageError
from policy.files import read_regular
from tools.pki import load_certificate, load_public_key

DESCRIPTION = """\
Check an image as a device would, against what you trust:
  --cert CERT          CERT is the only signing certificate trusted. A TrustedKeystore must
                       carry CERT as its signer certificate, and CERT must carry the
                       keystore-signing role (who issued CERT is not checked: no root given).
  --root-pubkey ROOT   a TrustedKeystore is checked against ROOT alone, as a device that fused
                       ROOT's hash checks it; any other image needs --keystore KS as well.
  --keystore KS        the keystore a device runs (checked against ROOT): its keys must allow
                       the image's signer for the image's type.
Then its content must pass what a device checks before it writes an image: a security version
its counter can hold (0..64), a keystore that trusts a key to sign update manifests, a store
whose files are certs/<Name>.pem holding one certificate each in a well-formed cramfs, a
manifest with nothing after its last entry listing keystore and store images only. What
depends on a particular device (its counters' values, its clock, the newest manifest it
installed) is not checked.
"""

ANCHORS = "--cert CERT, or --root-pubkey ROOT (with --keystore KS for an image other than a " \
          "keystore)"


def _with_cert(data: bytes, cert: Path) -> ImagePackage:
    certificate = load_certificate(cert)
    source = f"the certificate {cert}"
    if peek(data)[0].image_type == ImageType.TrustedKeystore:
        return open_keystore_signed_by(data, certificate, source)[0]
    return verify_image(data, Keyring([TrustedKey.from_certificate(certificate)], source=source))


def _with_root(data: bytes, root_pubkey: Path, keystore: Path | None) -> ImagePackage:
    fused = root_key_hash(load_public_key(root_pubkey))
    running = None if keystore is None else open_keystore(read_regular(keystore), fused)[1]
    image_type = peek(data)[0].image_type
    if image_type == ImageType.TrustedKeystore:
        return open_keystore(data, fused)[0]
    if running is None:
        raise UsageError(f"a {image_type_name(image_type)} image is checked against the keys "
                         "of a keystore: give --keystore KS with --root-pubkey, or --cert")
    return verify_image(data, running.keyring)


def verify_file(
    image: Path, cert: Path | None = None, keystore: Path | None = None,
    root_pubkey: Path | None = None,
) -> ImagePackage:
    """The image at `image`, authenticated and admitted (see module doc); UsageError for a
    combination of anchors that says nothing, else the device's typed errors."""
    if cert is not None and (keystore is not None or root_pubkey is not None):
        raise UsageError("--cert trusts one certificate; --keystore and --root-pubkey trust a "
                         "root: not both")
    if keystore is not None and root_pubkey is None:
        raise UsageError("--keystore needs --root-pubkey")
    data = read_regular(image)
    if cert is not None:
        package = _with_cert(data, cert)
    elif root_pubkey is not None:
        package = _with_root(data, root_pubkey, keystore)
    else:
        raise UsageError(f"verify needs a trust anchor: {ANCHORS}")
    admit_content(package)
    return package
