"""The device: flash layout, slots, boot record, boot, provisioning, TLS from the store,
and the device model that boots on a HAL machine."""
