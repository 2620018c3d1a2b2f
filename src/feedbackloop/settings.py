"""One settings class. Every setting has help text and reads ``FEEDBACKLOOP_<NAME>``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

DEFAULT_DATA_DIR = Path(".feedbackloop")


class Settings(BaseSettings):
    """Runtime configuration. Build it with :func:`load_settings` so that a bad value fails
    at start-up with a message that names the setting."""

    model_config = SettingsConfigDict(env_prefix="FEEDBACKLOOP_", extra="ignore")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Folder for the embedded SQLite database and the generated pseudonym key.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store, e.g. postgresql+psycopg://u:p@host/db. "
        "Default: SQLite (WAL mode) at <data_dir>/feedbackloop.db.",
    )
    pseudonym_key: SecretStr | None = Field(
        None,
        description="Secret key for the keyed hash that pseudonymises user ids. Required with "
        "PostgreSQL; with the embedded SQLite default a key is generated once in "
        "<data_dir>/pseudonym.key (outside the database).",
    )
    max_field_bytes: int = Field(
        100_000, ge=1_000, le=50_000_000,
        description="Largest text field accepted, in UTF-8 bytes (input, output, comment...).",
    )
    max_batch_records: int = Field(
        10_000, ge=1, le=1_000_000, description="Most records accepted in one API batch."
    )
    max_request_bytes: int = Field(
        64_000_000, ge=10_000,
        description="Largest HTTP request body accepted, in bytes.",
    )
    detect_person_names: bool = Field(
        False,
        description="Also redact person names with presidio and a spaCy English model "
        "(install the `nlp` extra). Costs about a millisecond a text, so it is off by default.",
    )
    session_max_age_hours: int = Field(
        12, ge=1, le=24 * 90, description="How long a web sign-in lasts."
    )
    secure_cookies: bool = Field(
        False, description="Mark the sign-in cookie Secure (set true behind HTTPS)."
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'feedbackloop.db'}"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonymisation key: from the setting, or generated once beside an
        embedded database. A server database without the setting is a configuration error."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if not self.is_embedded:
            raise ConfigurationError(
                "FEEDBACKLOOP_PSEUDONYM_KEY must be set when the store is PostgreSQL",
                setting="pseudonym_key",
            )
        path = self.data_dir / "pseudonym.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus ``overrides``; a bad value raises
    :class:`ConfigurationError` naming the setting."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigurationError(
            f"setting {name} (FEEDBACKLOOP_{name.upper()}): {first['msg']}", setting=name
        ) from None
