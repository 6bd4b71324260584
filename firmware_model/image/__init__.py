"""The image package format: envelope, sections, signatures and the payloads (manifest,
keystore, certificate store, cramfs). Knows nothing of the device or the update agent."""
