"""The dashboard (``greengrader web``); see docs/dashboard.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from greengrader.settings.secrets import secret_value


class WebSettings(BaseModel):
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_secret_key: SecretStr | None = None
    web_secret_key_file: Path | None = None
    web_cookie_secure: bool = False
    web_session_max_age_s: int = Field(default=8 * 3600, ge=60)
    web_login_max_failures: int = Field(default=5, ge=1)
    web_login_window_s: float = Field(default=300.0, gt=0)
    web_page_size: int = Field(default=50, ge=1, le=500)
    web_output_cap_bytes: int = Field(default=64 * 1024, ge=1024)
    web_poll_interval_ms: int = Field(default=1000, ge=200, le=60_000)

    def web_secret(self) -> str | None:
        """The key that signs dashboard session cookies (variable or file; never logged)."""
        return secret_value(self.web_secret_key, self.web_secret_key_file)
