"""Check a TLS certificate and key the way Nginx will load them, with one-line errors.

Nginx reports a bad certificate at start with several lines of OpenSSL's error stack, and at a
reload only in its error log while the old configuration keeps serving. The kit checks first,
at start, at ``config --check`` and before every reload, so the operator gets one line naming
the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

from .settings import SettingError

# Mozilla's "intermediate" TLS 1.2 ciphers (TLS 1.3's are fixed by OpenSSL): forward secrecy and
# AEAD only; every browser and client of the last years has one of them.
CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
))
PROTOCOLS = "TLSv1.2 TLSv1.3"


def _read(setting: str, path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        raise SettingError(f"setting {setting}: {path}: no such file") from None
    except IsADirectoryError:
        raise SettingError(f"setting {setting}: {path}: is a directory, not a file") from None
    except OSError as e:
        raise SettingError(f"setting {setting}: {path}: cannot read it ({e.strerror})") from None


def check(cert: str, key: str) -> None:
    """Raise :class:`SettingError` (one line) unless ``cert`` and ``key`` load as a pair."""
    cert_text, key_text = _read("tls_cert", cert), _read("tls_key", key)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise SettingError(f"setting tls_cert: {cert}: no PEM certificate in it "
                           "(-----BEGIN CERTIFICATE-----)")
    if "PRIVATE KEY-----" not in key_text:
        raise SettingError(f"setting tls_key: {key}: no PEM private key in it "
                           "(-----BEGIN PRIVATE KEY-----)")
    if "ENCRYPTED" in key_text:
        raise SettingError(f"setting tls_key: {key}: the key is encrypted; Nginx cannot ask for "
                           "its passphrase (store it decrypted, readable by root only)")
    import ssl  # here: a stack without TLS never loads OpenSSL into the supervisor

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # password: never let OpenSSL prompt on the terminal
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise SettingError(f"settings tls_cert and tls_key: {key} is not the key of {cert}"
                               ) from None
        raise SettingError(f"settings tls_cert and tls_key: {cert}, {key}: OpenSSL cannot load "
                           f"them ({e.reason or e})") from None
