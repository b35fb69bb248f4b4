"""SMS and voice calls through a provider interface, with a Twilio adapter on its REST API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

import httpx

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.notify.channels.base import HttpChannel, config_of
from zhiban.notify.config import SmsConfig, VoiceConfig
from zhiban.notify.model import (
    DeliveryResult,
    Destination,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from zhiban.notify.ratelimit import Rate

TWILIO_API = "https://api.twilio.com"
SMS_MAX = 1_600  # Twilio refuses longer bodies
# Twilio's <Say> languages for our two.
SAY_LANGUAGE = {"zh": "zh-CN", "en": "en-US"}
# Where the desk hears a page call's keypress and its status (the hotline feature answers these paths).
PAGE_ACK_PATH = "/api/v1/hotline/twilio/page/ack"
PAGE_STATUS_PATH = "/api/v1/hotline/twilio/page/status"
ACK_PROMPT = {"zh": "按 1 确认告警。", "en": "Press 1 to acknowledge."}


@dataclass(frozen=True)
class ProviderReceipt:
    """What a provider accepted: its id and status (Twilio: sid and "queued")."""

    provider_id: str
    status: str


class SmsProvider(Protocol):
    """Sends a text message; raises RetryableDeliveryError / PermanentDeliveryError."""

    def send_sms(self, to: str, body: str) -> ProviderReceipt:
        """Send one SMS."""
        ...


class VoiceProvider(Protocol):
    """Places a call that reads a text; raises RetryableDeliveryError / PermanentDeliveryError."""

    def call(self, to: str, spoken_text: str, language: str, *, ackable: bool = False) -> ProviderReceipt:
        """Call and read the text; `ackable`: the callee may acknowledge by keypad (a page)."""
        ...


def say_twiml(spoken_text: str, language: str, repeat: int = 2) -> str:
    """TwiML that reads the text `repeat` times with a pause between (the callee may miss the start)."""
    lang = SAY_LANGUAGE.get(language, "en-US")
    say = f'<Say language="{lang}">{escape(spoken_text)}</Say>'
    body = '<Pause length="1"/>'.join([say] * repeat)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def ack_twiml(spoken_text: str, language: str, action_url: str, repeat: int = 2) -> str:
    """TwiML that reads the page inside a one-digit <Gather> posting to `action_url` (press 1 acknowledges)."""
    lang = SAY_LANGUAGE.get(language, "en-US")
    words = f"{spoken_text} {ACK_PROMPT.get(language, ACK_PROMPT['en'])}"
    say = f'<Say language="{lang}">{escape(words)}</Say>'
    body = '<Pause length="1"/>'.join([say] * repeat)
    gather = f'<Gather action="{escape(action_url)}" method="POST" numDigits="1" timeout="8">{body}</Gather>'
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{gather}</Response>'


class TwilioProvider(HttpChannel):
    """Twilio REST API 2010-04-01: Messages.json and Calls.json, form-encoded, HTTP basic auth."""

    type_name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        base_url: str = TWILIO_API,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
        callback_base: str = "",
    ) -> None:
        super().__init__(client, clock)
        if not account_sid or not auth_token or not from_number:
            raise InvalidInput("Twilio needs an account SID, an auth token and a From number")
        if not re.fullmatch(r"[A-Za-z0-9]{2,64}", account_sid):
            raise InvalidInput("a Twilio account SID is letters and digits (AC...)")
        self._account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._from = from_number
        self._base_url = base_url.rstrip("/")
        # The desk's public base URL: a page's keypress and call status come back there (empty: plain calls).
        self._callback_base = callback_base.rstrip("/")

    @classmethod
    def from_url(cls, url: str, *, client: httpx.Client | None = None, callback_base: str = "") -> TwilioProvider:
        """Read twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=%2B15550001111 (http:// host for tests)."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme != "twilio" or not parts.username or not parts.password or not query.get("from"):
            raise InvalidInput("Twilio URL must look like twilio://SID:TOKEN@api.twilio.com?from=%2B15550001111")
        host = parts.netloc.rpartition("@")[2] or "api.twilio.com"
        scheme = query.get("scheme", ["https"])[-1]
        return cls(
            unquote(parts.username),
            unquote(parts.password),
            query["from"][-1],
            base_url=f"{scheme}://{host}",
            client=client,
            callback_base=callback_base,
        )

    def __repr__(self) -> str:
        return f"TwilioProvider({self._account_sid}, base_url={self._base_url})"

    def send_sms(self, to: str, body: str) -> ProviderReceipt:
        """POST Messages.json with To, From, Body."""
        cut = body if len(body) <= SMS_MAX else body[: SMS_MAX - 1] + "…"
        return self._create("Messages.json", {"To": to, "From": self._from, "Body": cut})

    def call(self, to: str, spoken_text: str, language: str, *, ackable: bool = False) -> ProviderReceipt:
        """POST Calls.json with To, From and inline Twiml; with a callback base, status callbacks, and for a page
        a <Gather> whose "1" acknowledges it."""
        base = self._callback_base
        twiml = (
            ack_twiml(spoken_text, language, base + PAGE_ACK_PATH)
            if ackable and base
            else say_twiml(spoken_text, language)
        )
        form: list[tuple[str, str]] = [("To", to), ("From", self._from), ("Twiml", twiml)]
        if base:
            form.append(("StatusCallback", base + PAGE_STATUS_PATH))
            form.append(("StatusCallbackMethod", "POST"))
            form += [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")]
        return self._create("Calls.json", form)

    def _create(self, resource: str, form: dict[str, str] | list[tuple[str, str]]) -> ProviderReceipt:
        url = f"{self._base_url}/2010-04-01/Accounts/{self._account_sid}/{resource}"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        reply = self.post(url, content=urlencode(form).encode(), headers=headers, auth=self._auth)
        body = reply.json()
        if 200 <= reply.status < 300:
            if not isinstance(body, dict) or not isinstance(body.get("sid"), str):
                raise PermanentDeliveryError(
                    self.type_name, f"answer without a sid: {reply.excerpt()}", summary="unexpected answer"
                )
            return ProviderReceipt(body["sid"], str(body.get("status", "")))
        if isinstance(body, dict) and "code" in body and reply.status < 500 and reply.status != 429:
            # Twilio errors: {"code": 21211, "message": "...", "more_info": "...", "status": 400}.
            raise PermanentDeliveryError(
                self.type_name,
                f"Twilio {body.get('code')}: {body.get('message', '')}",
                status=reply.status,
                summary=f"Twilio {str(body.get('code'))[:20]}",
            )
        self.raise_for_status(reply)
        raise RetryableDeliveryError(self.type_name, f"unexpected answer {reply.status}", status=reply.status)


class _PhoneChannel:
    rate_limits: ClassVar[tuple[Rate, ...]] = ()
    type_name: ClassVar[str] = "phone"

    def _missing(self) -> PermanentDeliveryError:
        return PermanentDeliveryError(self.type_name, f"no {self.type_name} provider is configured")


class SmsChannel(_PhoneChannel):
    """Sends the message's short form (or its subject) as an SMS."""

    type_name = "sms"

    def __init__(self, provider: SmsProvider | None) -> None:
        self._provider = provider

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver through the provider."""
        config = config_of(destination, SmsConfig, self.type_name)
        if self._provider is None:
            raise self._missing()
        receipt = self._provider.send_sms(config.to, message.short_text or message.subject)
        return DeliveryResult(self.type_name, provider_id=receipt.provider_id, detail=receipt.status)


class VoiceChannel(_PhoneChannel):
    """Calls and reads the message's spoken form (or its subject)."""

    type_name = "voice"

    def __init__(self, provider: VoiceProvider | None) -> None:
        self._provider = provider

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Place the call through the provider."""
        config = config_of(destination, VoiceConfig, self.type_name)
        if self._provider is None:
            raise self._missing()
        ackable = message.event == "incident.page"  # a page may be acknowledged by keypad; a notice may not
        receipt = self._provider.call(
            config.to, message.spoken_text or message.subject, message.language, ackable=ackable
        )
        return DeliveryResult(self.type_name, provider_id=receipt.provider_id, detail=receipt.status)
