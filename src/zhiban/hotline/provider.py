"""The seam to a voice provider: how its webhooks are checked and read, and how the desk's answer is written.

Twilio is the one provider today (`twilio_voice.TwilioVoice`); a mainland-China provider implements the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from zhiban.hotline.model import CallEvent, Verb

Params = Mapping[str, Sequence[str]]


class VoiceWebhooks(Protocol):
    """One provider account's webhooks."""

    name: str
    media_type: str

    def verify(self, url: str, params: Params, headers: Mapping[str, str]) -> bool:
        """Whether the provider signed this request (the full public URL it called and its form)."""
        ...

    def event(self, params: Params) -> CallEvent:
        """The call event the form describes; InvalidInput when it is not one."""
        ...

    def render(self, verbs: Sequence[Verb]) -> str:
        """The answer in the provider's markup."""
        ...
