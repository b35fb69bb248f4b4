"""Twilio Programmable Voice: X-Twilio-Signature checks, webhook forms, and TwiML answers.

Twilio signs a webhook with the account's auth token: base64(HMAC-SHA1(token, URL + each POST parameter's name and
value, sorted by name)), over the exact URL it requested (its public one: behind a proxy the desk rebuilds it from
its base URL). Like Twilio's own validator, the URL is tried with and without the scheme's default port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree as ET

from zhiban.core.errors import InvalidInput
from zhiban.hotline.model import (
    CALL_ID,
    MAX_RECORDING_URL,
    CallEvent,
    Dial,
    Gather,
    Hangup,
    Pause,
    Record,
    Redirect,
    Say,
    Verb,
)
from zhiban.hotline.provider import Params

SIGNATURE_HEADER = "x-twilio-signature"
SAY_LANGUAGE = {"zh": "zh-CN", "en": "en-US"}


def signature(auth_token: str, url: str, params: Params) -> str:
    """Twilio's signature of a request: the URL, then each parameter name and value, names sorted."""
    signed = url
    for name in sorted(set(params)):
        for value in sorted(set(params[name])):
            signed += name + value
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default}"))
    return [url, without, with_port] if parts.port is None else [url, without]


class TwilioVoice:
    """One Twilio account's voice webhooks."""

    name = "twilio"
    media_type = "application/xml"

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise InvalidInput("Twilio webhooks need the account's auth token")
        self._token = auth_token

    def __repr__(self) -> str:
        return "TwilioVoice(<token>)"

    def verify(self, url: str, params: Params, headers: Mapping[str, str]) -> bool:
        given = headers.get(SIGNATURE_HEADER, "") or headers.get("X-Twilio-Signature", "")
        if not given or len(given) > 200:
            return False
        return any(
            hmac.compare_digest(signature(self._token, candidate, params).encode(), given.encode())
            for candidate in _port_variants(url)
        )

    def event(self, params: Params) -> CallEvent:
        def one(name: str) -> str:
            values = params.get(name) or ()
            return values[-1].strip() if values else ""

        call_id = one("CallSid")
        if not CALL_ID.fullmatch(call_id):
            raise InvalidInput("a Twilio voice webhook names its call (CallSid)")
        recording_url = one("RecordingUrl")
        if recording_url and (len(recording_url) > MAX_RECORDING_URL or urlsplit(recording_url).scheme != "https"):
            raise InvalidInput("RecordingUrl must be an https URL of at most 500 characters")
        duration = one("RecordingDuration")
        return CallEvent(
            call_id=call_id,
            from_number=one("From")[:64],
            to_number=one("To")[:64],
            digits=one("Digits")[:32],
            call_status=one("CallStatus")[:32],
            recording_id=one("RecordingSid")[:64],
            recording_url=recording_url,
            recording_status=one("RecordingStatus")[:32],
            recording_seconds=int(duration) if duration.isdigit() and len(duration) < 7 else 0,
        )

    def render(self, verbs: Sequence[Verb]) -> str:
        response = ET.Element("Response")
        for verb in verbs:
            _append(response, verb)
        return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def _say(parent: ET.Element, say: Say) -> None:
    ET.SubElement(parent, "Say", language=SAY_LANGUAGE[say.language]).text = say.text


def _append(parent: ET.Element, verb: Verb) -> None:
    if isinstance(verb, Say):
        _say(parent, verb)
    elif isinstance(verb, Gather):
        attrs = {"action": verb.action, "method": "POST", "timeout": str(verb.timeout)}
        if verb.num_digits is not None:
            attrs["numDigits"] = str(verb.num_digits)
        if verb.finish_on_key is not None:
            attrs["finishOnKey"] = verb.finish_on_key
        gather = ET.SubElement(parent, "Gather", attrs)
        for say in verb.says:
            _say(gather, say)
    elif isinstance(verb, Record):
        ET.SubElement(
            parent,
            "Record",
            action=verb.action,
            method="POST",
            maxLength=str(verb.max_length),
            playBeep="true" if verb.play_beep else "false",
            recordingStatusCallback=verb.status_callback,
            recordingStatusCallbackMethod="POST",
        )
    elif isinstance(verb, Pause):
        ET.SubElement(parent, "Pause", length=str(verb.length))
    elif isinstance(verb, Redirect):
        ET.SubElement(parent, "Redirect", method="POST").text = verb.url
    elif isinstance(verb, Dial):
        dial = ET.SubElement(parent, "Dial", callerId=verb.caller_id, timeout=str(verb.timeout))
        ET.SubElement(dial, "Number").text = verb.number
    elif isinstance(verb, Hangup):
        ET.SubElement(parent, "Hangup")


def auth_token_of(twilio_url: str) -> str:
    """The auth token in the desk's twilio://SID:TOKEN@api.twilio.com?from=... URL ("" when none is set)."""
    if not twilio_url:
        return ""
    from urllib.parse import unquote

    parts = urlsplit(twilio_url)
    return unquote(parts.password or "") if parts.scheme == "twilio" else ""
