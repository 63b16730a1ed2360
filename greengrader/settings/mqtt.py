"""MQTT: how the bridge (and ``greengrader health``) reach Mosquitto; see docs/bridge.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from greengrader.settings.secrets import secret_value


class MqttSettings(BaseModel):
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_topic: str = "submissions"
    mqtt_client_id: str = "greengrader-bridge"
    mqtt_shared_group: str | None = None
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    mqtt_receipt_topic: str = "receipts"
    mqtt_workers_topic: str = "workers/register"
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=60)
    mqtt_receive_maximum: int = Field(default=200, ge=1, le=65535)

    def mqtt_secret(self) -> str | None:
        """The MQTT password from the variable or the password file (never logged)."""
        return secret_value(self.mqtt_password, self.mqtt_password_file)
