"""The kit's certificate check: one line naming the file and the problem, before Nginx sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaskstack.settings import SettingError
from flaskstack.tls import check

from .certs import CA


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path)


def one_line(error: pytest.ExceptionInfo[SettingError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_matching_pair_passes(ca: CA) -> None:
    issued = ca.issue("site")
    check(str(issued.cert), str(issued.key))


def test_missing_files(ca: CA, tmp_path: Path) -> None:
    issued = ca.issue("site")
    with pytest.raises(SettingError) as e:
        check(str(tmp_path / "nope.crt"), str(issued.key))
    assert one_line(e) == f"setting tls_cert: {tmp_path / 'nope.crt'}: no such file"
    with pytest.raises(SettingError) as e:
        check(str(issued.cert), str(tmp_path))
    assert "setting tls_key" in one_line(e) and "is a directory" in one_line(e)


def test_mismatched_key(ca: CA) -> None:
    a, b = ca.issue("a"), ca.issue("b")
    with pytest.raises(SettingError) as e:
        check(str(a.cert), str(b.key))
    assert one_line(e) == f"settings tls_cert and tls_key: {b.key} is not the key of {a.cert}"


def test_swapped_and_garbage_files(ca: CA, tmp_path: Path) -> None:
    issued = ca.issue("site")
    with pytest.raises(SettingError) as e:
        check(str(issued.key), str(issued.cert))
    assert "setting tls_cert" in one_line(e) and "no PEM certificate" in one_line(e)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\n\x00\xff not base64\n"
                        b"-----END CERTIFICATE-----\n")
    with pytest.raises(SettingError) as e:
        check(str(garbage), str(issued.key))
    assert "OpenSSL cannot load them" in one_line(e)
    truncated = tmp_path / "half.key"
    truncated.write_text(issued.key.read_text()[:60])
    with pytest.raises(SettingError) as e:
        check(str(issued.cert), str(truncated))
    assert one_line(e).startswith("setting")


def test_encrypted_key_is_refused_without_prompting(ca: CA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    issued = ca.issue("site")
    key = serialization.load_pem_private_key(issued.key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(SettingError) as e:
        check(str(issued.cert), str(locked))
    assert "encrypted" in one_line(e)
