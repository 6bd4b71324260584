"""The endpoint audit: which TLS endpoints of an app stop working when the certificate store
changes. `endpoints` finds them, `chains` fetches or loads what each server sends, `stores`
reads the two stores, `judge` verifies with cryptography's x509.verification, `runner` ties
them together and `report` renders the result."""
