"""Settings of the operator console (``[console]``): where it listens, who may change things, what it hides.

Options (all optional):

- ``host`` (default ``127.0.0.1``): the address ``kafkaguard console`` binds; a non-loopback
  address is refused unless an operator token is configured (an open console on a network would
  let anyone read payloads);
- ``port`` (default ``8090``): its TCP port;
- ``operator_token`` / ``operator_token_file``: the secret every state-changing action needs
  (the file's content, stripped, when both are set the value wins); none configured: read-only;
- ``edit_and_retry`` (default False): allow fixing a payload and retrying it as a new event;
- ``redact_fields`` (default empty): payload and header field names shown as ``[redacted]``
  wherever they occur (any depth, exact names, case-insensitive).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kafkaguard.errors import ConfigurationError


class ConsoleSettings(BaseModel):
    """``kafkaguard console``'s settings; see the module docstring for each option."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(default="127.0.0.1", description="address the console binds (loopback by default)")
    port: int = Field(default=8090, ge=1, le=65535, description="TCP port of the console")
    operator_token: SecretStr | None = Field(default=None, description="secret needed for every change")
    operator_token_file: Path | None = Field(default=None, description="file holding the operator token")
    edit_and_retry: bool = Field(default=False, description="allow edit-and-retry (a new event with lineage)")
    redact_fields: list[str] = Field(default_factory=list, description="payload/header fields shown as [redacted]")

    def token(self) -> str | None:
        """The operator token in clear (the value, else the file's stripped content), or None."""
        if self.operator_token is not None and self.operator_token.get_secret_value():
            return self.operator_token.get_secret_value()
        if self.operator_token_file is not None:
            try:
                value = self.operator_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"console.operator_token_file {self.operator_token_file} cannot be read ({exc.strerror}); "
                    "fix the path or its permissions"
                ) from None
            return value or None
        return None
