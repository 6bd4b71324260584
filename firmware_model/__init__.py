"""Device side of sphere-fwmodel: image packages, the trusted keystore, the certificate store,
the update agent and the boot path of an Azure Sphere MT3620, written against `hal`."""
