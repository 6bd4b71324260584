"""The tools' tests: a lab PKI."""

from tests.fixtures import lab_pki

__all__ = ["lab_pki"]
