"""Secrets: read from `$CREDENTIALS_DIRECTORY` (systemd LoadCredential=) or the environment.

A `.env` beside the config file is loaded first (it never overrides the real environment).
Values are returned, never logged; `Secrets` has no repr that could leak them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values


class MissingSecret(Exception):
    def __init__(self, name: str, why: str = ""):
        self.name = name
        hint = why or f"set {name} in the environment, in .env beside the config, or as a systemd credential"
        super().__init__(f"secret {name} is missing: {hint}")


class Secrets:
    """Lookup of named secrets; credential files win over the environment. Each is looked up once: the
    environment is a copy taken at start, and systemd's credentials are fixed for the life of the service,
    while the webhook route asks for its app's secret on every delivery (a file read each time cost ~19 µs)."""

    def __init__(self, environ: Mapping[str, str], credentials_dir: str | None = None):
        self._environ = dict(environ)
        self._credentials_dir = Path(credentials_dir) if credentials_dir else None
        self._found: dict[str, str | None] = {}

    @classmethod
    def load(cls, config_dir: Path, environ: Mapping[str, str] | None = None) -> "Secrets":
        environ = dict(os.environ if environ is None else environ)
        dotenv_file = config_dir / ".env"
        if dotenv_file.is_file():
            for key, value in dotenv_values(dotenv_file).items():
                if value is not None:
                    environ.setdefault(key, value)
        return cls(environ, environ.get("CREDENTIALS_DIRECTORY"))

    def get(self, name: str) -> str | None:
        if name not in self._found:  # two threads asking at once both read: the same value
            self._found[name] = self._look_up(name)
        return self._found[name]

    def _look_up(self, name: str) -> str | None:
        if self._credentials_dir:
            candidate = self._credentials_dir / name.lower()
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8").strip() or None
        value = self._environ.get(name, "").strip()
        return value or None

    def require(self, name: str, why: str = "") -> str:
        value = self.get(name)
        if value is None:
            raise MissingSecret(name, why)
        return value

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"
