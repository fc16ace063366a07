"""Secret references: resolved from env or file, never printed."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from sbc.auth.secrets import Secret, SecretError, SecretRef, resolve_secret

VALUE = "hunter2-Secret"


def test_secret_never_prints_itself(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    texts = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>20}",
        format(secret, ""),
    ]
    texts.append(repr({"password": secret}))
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("trunk password %s %r", secret, secret)
    texts.append(caplog.text)
    for text in texts:
        assert VALUE not in text
        assert "***" in text
    assert secret.reveal() == VALUE


def test_secret_equality_and_no_pickling() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert hash(Secret("a")) == hash(Secret("a"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))


def test_from_env() -> None:
    secret = resolve_secret({"env": "TRUNK_PASS"}, environ={"TRUNK_PASS": VALUE})
    assert secret.reveal() == VALUE


def test_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBC_TEST_TRUNK_PASS", VALUE)
    assert resolve_secret(SecretRef(env="SBC_TEST_TRUNK_PASS")).reveal() == VALUE


def test_missing_env_names_the_variable_only() -> None:
    with pytest.raises(SecretError, match="'TRUNK_PASS' is not set"):
        resolve_secret({"env": "TRUNK_PASS"}, environ={})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (VALUE + "\n", VALUE),
        (VALUE + "\r\n", VALUE),
        (VALUE, VALUE),
        (VALUE + "\n\n", VALUE + "\n"),  # one newline only: the rest is the operator's
        (" spaced ", " spaced "),
    ],
)
def test_from_file_strips_one_trailing_newline(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "pass").write_bytes(content.encode())
    assert resolve_secret({"file": "pass"}, base=tmp_path).reveal() == expected
    absolute = str(tmp_path / "pass")
    assert resolve_secret(SecretRef(file=absolute)).reveal() == expected


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match=r"cannot read secret file 'missing': No such file"):
        resolve_secret({"file": "missing"}, base=tmp_path)
    with pytest.raises(SecretError, match="cannot read"):
        resolve_secret({"file": "."}, base=tmp_path)  # a directory


def test_bad_file_content_never_leaks_a_byte(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"abc\xffdef")
    with pytest.raises(SecretError) as info:
        resolve_secret({"file": "bin"}, base=tmp_path)
    assert str(info.value) == "secret file 'bin' is not UTF-8 text"  # no byte quoted
    assert info.value.__suppress_context__  # nor a chained codec error quoting one
    (tmp_path / "big").write_bytes(b"x" * 5000)
    with pytest.raises(SecretError, match="larger than"):
        resolve_secret({"file": "big"}, base=tmp_path)


@pytest.mark.parametrize("ref", [{"env": "EMPTY"}, {"file": "empty"}])
def test_empty_secret_is_an_error(tmp_path: Path, ref: dict[str, str]) -> None:
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret(ref, base=tmp_path, environ={"EMPTY": ""})


@pytest.mark.parametrize(
    ("ref", "where"),
    [
        ({}, "give exactly one"),
        ({"env": "A", "file": "b"}, "give exactly one"),
        ({"env": "1BAD"}, "env"),
        ({"env": 5}, "env"),
        ({"file": ""}, "file"),
        ({"password": VALUE}, "password"),  # a typo'd key, or a password in clear
    ],
)
def test_invalid_references_are_schema_errors(ref: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        SecretRef.model_validate(ref)
    assert where in str(info.value)
    with pytest.raises(SecretError, match="invalid secret reference") as again:
        resolve_secret(ref)
    assert VALUE not in str(again.value)


def test_errors_never_carry_the_value(tmp_path: Path) -> None:
    """A SecretError message names the reference and never the value it read."""
    (tmp_path / "big").write_text(VALUE * 400)
    with pytest.raises(SecretError) as info:
        resolve_secret({"file": "big"}, base=tmp_path)
    assert VALUE not in str(info.value)
    assert info.value.__cause__ is None
