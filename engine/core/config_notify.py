"""The safe list's ``notify:`` section: which events the daemon sends, and through which
channels. A channel's secret (webhook URL, bot token) is never written in the safe list: the
section names the environment variable that holds it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# Notifications (console/daemon/notify.py): what the daemon sends while nobody watches.
NotifyEvent = Literal["kill", "halted", "stale", "restart", "feed_down", "fill", "banned"]
NOTIFY_EVENTS: tuple[str, ...] = ("kill", "halted", "stale", "restart", "feed_down", "fill", "banned")
DEFAULT_NOTIFY_EVENTS: tuple[str, ...] = ("kill", "halted", "stale", "restart", "feed_down", "banned")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TELEGRAM_CHAT_RE = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,})$")
# The sections whose values are never echoed in an error line: they may hold a secret pasted
# where the name of an environment variable belongs.
SECRET_SECTIONS = (("notify", "webhook"), ("notify", "telegram"))


def _env_name(v: str, field: str, example: str) -> str:
    if not ENV_NAME_RE.match(v):
        raise ValueError(
            f"{field} names the environment variable that holds the secret (letters, digits "
            f"and _, e.g. {example}), not the secret itself"
        )
    return v


def _no_secret_here(data: Any, keys: tuple[str, ...], env_field: str) -> Any:
    if isinstance(data, dict):
        for k in keys:
            if k in data:
                raise ValueError(
                    f"{k!r} is not written in the safe list (it is a secret): set it in an "
                    f"environment variable and name that variable with {env_field}"
                )
    return data


class WebhookConfig(_Strict):
    """A generic webhook: a JSON POST to the URL held by the environment variable ``url_env``."""

    url_env: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _url_not_inline(cls, data: Any) -> Any:
        return _no_secret_here(data, ("url",), "url_env")

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, v: str) -> str:
        return _env_name(v, "url_env", "MULTIPAR_WEBHOOK_URL")


class TelegramConfig(_Strict):
    """Telegram's bot API: the bot token comes from the environment variable ``token_env``."""

    token_env: str = Field(min_length=1)
    chat_id: str
    api_url: str = "https://api.telegram.org"

    @model_validator(mode="before")
    @classmethod
    def _token_not_inline(cls, data: Any) -> Any:
        return _no_secret_here(data, ("token", "bot_token"), "token_env")

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, v: str) -> str:
        return _env_name(v, "token_env", "MULTIPAR_TELEGRAM_TOKEN")

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # YAML reads 123456 as a number; Telegram takes either
        if isinstance(v, str) and not TELEGRAM_CHAT_RE.match(v.strip()):
            raise ValueError('chat_id is a chat number ("123456", "-100123456") or @channelname')
        return v.strip() if isinstance(v, str) else v

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s?#@]+(/[^\s?#]*)?$", v):
            raise ValueError(
                "api_url is an http(s) URL without user, query or fragment, "
                "e.g. https://api.telegram.org"
            )
        return v.rstrip("/")


class NotifyConfig(_Strict):
    """Notifications the daemon sends; no channel configured means notifications are off."""

    events: tuple[NotifyEvent, ...] = DEFAULT_NOTIFY_EVENTS  # type: ignore[assignment]
    feed_down_after_s: float = Field(60.0, gt=0, le=86_400)
    max_per_minute: int = Field(20, ge=1, le=600)  # per channel; beyond it, messages wait
    webhook: WebhookConfig | None = None
    telegram: TelegramConfig | None = None

    @field_validator("events")
    @classmethod
    def _events_once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({e for e in v if v.count(e) > 1})
        if twice:
            raise ValueError(f"event {twice[0]!r} is listed twice (list each event once)")
        return v

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels (their secrets are read from the environment later)."""
        return tuple(
            name for name, ch in (("webhook", self.webhook), ("telegram", self.telegram)) if ch
        )
