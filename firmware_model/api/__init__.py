"""The device REST API, served by the model: the routes Microsoft's `azuresphere-device-api`
client calls for status, images, sideloaded updates and the app certificate store, their JSON
and error codes (`service`, `routes`, `codes`), the lab CA and the server certificate it issues
(`pki`), and the HTTPS server that serves them on loopback (`server`). Between the command line
and the update agent: it drives the agent and the device, and `fwmodel serve-api` drives it.
docs/device-api.md describes it."""
