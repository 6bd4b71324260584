"""Device side of sphere-fwmodel, an Azure Sphere MT3620 written against `hal`: the image format
(`image`), the chain of trust (`trust`), the device and its boot path (`device`), the update
agent (`agent`) and the `fwmodel` command line (`cli`), each layer importing only those below."""
