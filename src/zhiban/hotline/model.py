"""The hotline's domain: a call's events and the spoken answers the desk gives, whatever the voice provider.

A provider (Twilio today; a mainland-China provider later) turns its webhook's form into a `CallEvent` and the
desk's answer, a list of verbs, into its own markup (TwiML). Nothing here knows a provider's names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Language = Literal["zh", "en"]

# Bounds on what a webhook may carry (Twilio's forms are a few hundred bytes).
MAX_BODY = 16 * 1024
MAX_FIELDS = 100
MAX_VALUE = 2_000
MAX_RECORDING_URL = 500
MAX_VOICEMAIL_SECONDS = 180
IDENTIFY_TRIES = 3
# After "press 1" pages, the caller may hold while the engineer is woken: WAIT_ROUNDS pauses of WAIT_SECONDS, then
# the voicemail. Acknowledged meanwhile (and with a phone number on their profile), the engineer is dialled in.
WAIT_ROUNDS = 6
WAIT_SECONDS = 10
# A voicemail is filed P2: a customer who phones has more at stake than one who writes (so a plan that pages
# P2 out of hours wakes someone for it, as it would for a P2 ticket from the portal).
VOICEMAIL_PRIORITY = "P2"
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TICKET_DIGITS = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One webhook of a call, as the desk reads it (provider-neutral)."""

    call_id: str
    from_number: str = ""
    to_number: str = ""
    digits: str = ""
    call_status: str = ""
    recording_id: str = ""
    recording_url: str = ""
    recording_status: str = ""
    recording_seconds: int = 0


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    language: Language = "en"


@dataclass(frozen=True, slots=True)
class Gather:
    """Ask for keys; the keys pressed are posted to `action`. Without input the call goes on to the next verb."""

    action: str
    says: tuple[Say, ...]
    num_digits: int | None = None
    finish_on_key: str | None = None
    timeout: int = 6


@dataclass(frozen=True, slots=True)
class Record:
    """Record a voicemail; `action` hears when it ends, `status_callback` when the recording is ready."""

    action: str
    status_callback: str
    max_length: int = MAX_VOICEMAIL_SECONDS
    play_beep: bool = True


@dataclass(frozen=True, slots=True)
class Pause:
    length: int = WAIT_SECONDS


@dataclass(frozen=True, slots=True)
class Redirect:
    """Go on with the answer at this URL (the provider posts the call's state to it)."""

    url: str


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect the caller to this number, shown the line's number as caller id."""

    number: str
    caller_id: str
    timeout: int = 25


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


Verb = Say | Gather | Record | Pause | Redirect | Dial | Hangup


@dataclass(frozen=True, slots=True)
class Urls:
    """Where a provider's next webhooks of a call go (absolute, public URLs: the provider calls them)."""

    menu: str
    identify: str
    recorded: str
    recording: str
    wait: str  # with ?round=N

    def wait_round(self, n: int) -> str:
        return f"{self.wait}?round={n}"


@dataclass(frozen=True, slots=True)
class Line:
    """A support line: the number customers of a plan call, and the language it answers in."""

    id: str
    number: str
    plan: str
    language: Language = "zh"
    label: str = ""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, when the desk knows: a customer user of one organization."""

    person_id: str
    organization_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Words:
    greeting: str
    known: str
    menu: str
    identify: str
    not_found: str
    goodbye_unknown: str
    paged: str
    filed: str
    voicemail: str
    details: str
    thanks: str
    hold: str
    connecting: str
    acknowledged: str
    not_acknowledged: str
    not_a_page: str
    already_resolved: str


WORDS: dict[str, Words] = {
    "en": Words(
        greeting="Thank you for calling {label} support.",
        known="Hello {name}.",
        menu="If your service is down now, press 1. To leave a message, press 2 or stay on the line.",
        identify="We do not know this number. Enter your ticket number, then press the pound key.",
        not_found="We found no ticket {digits}.",
        goodbye_unknown="We could not find your account. Please write to us from the support portal. Goodbye.",
        paged="Your ticket {ticket} is filed as P1 and the engineer on duty is being paged now.",
        filed="Your ticket {ticket} is filed as P1; an engineer will answer it as soon as possible.",
        voicemail="Please leave your message after the tone, then hang up.",
        details="To add details, speak after the tone, then hang up.",
        thanks="Thank you. Your message is recorded. Goodbye.",
        hold="Please stay on the line: we connect you as soon as the engineer answers.",
        connecting="{name} acknowledged your ticket. Connecting you now.",
        acknowledged="Acknowledged. Thank you.",
        not_acknowledged="Not acknowledged. The page goes on.",
        not_a_page="This call is not a page. Goodbye.",
        already_resolved="This incident is already resolved.",
    ),
    "zh": Words(
        greeting="感谢致电{label}技术支持。",
        known="{name}，您好。",
        menu="如果您的服务现在中断，请按 1。留言请按 2 或不要挂机。",
        identify="我们无法识别您的号码。请输入您的工单号，以井号键结束。",
        not_found="没有找到工单 {digits}。",
        goodbye_unknown="无法识别您的账户，请通过支持门户联系我们。再见。",
        paged="您的工单 {ticket} 已按 P1 提交，正在呼叫值班工程师。",
        filed="您的工单 {ticket} 已按 P1 提交，工程师会尽快处理。",
        voicemail="请在提示音后留言，留言完毕后挂机。",
        details="如需补充说明，请在提示音后留言，然后挂机。",
        thanks="谢谢，您的留言已录下。再见。",
        hold="请不要挂机，工程师接听后将为您接通。",
        connecting="{name} 已确认您的工单，正在为您接通。",
        acknowledged="已确认，谢谢。",
        not_acknowledged="未确认，呼叫将继续。",
        not_a_page="这不是告警呼叫。再见。",
        already_resolved="该故障已经解决。",
    ),
}


def words(language: str) -> Words:
    return WORDS.get(language, WORDS["en"])


def language_of(value: str) -> Language:
    return "zh" if value == "zh" else "en"


@dataclass(frozen=True, slots=True)
class Script:
    """The verbs of one answer, built up in order."""

    language: Language
    verbs: list[Verb] = field(default_factory=list)

    def say(self, text: str) -> Script:
        self.verbs.append(Say(text, self.language))
        return self

    def then(self, verb: Verb) -> Script:
        self.verbs.append(verb)
        return self


def greet(line: Line, caller: Caller | None, urls: Urls) -> list[Verb]:
    """The first answer: a known caller hears the menu, an unknown one is asked for a ticket number."""
    w = words(line.language)
    script = Script(line.language).say(w.greeting.format(label=line.label or line.plan))
    if caller is None:
        return script.then(Gather(urls.identify, (Say(w.identify, line.language),), finish_on_key="#")).verbs
    return menu(line.language, urls, first=w.known.format(name=caller.name), script=script)


def menu(language: Language, urls: Urls, *, first: str = "", script: Script | None = None) -> list[Verb]:
    """ "Press 1 if your service is down"; without a key the caller goes on to the voicemail."""
    w = words(language)
    script = script or Script(language)
    says = tuple(Say(t, language) for t in (first, w.menu) if t)
    script.then(Gather(urls.menu, says, num_digits=1, timeout=8))
    return voicemail(language, urls, script=script)


def voicemail(language: Language, urls: Urls, *, details: bool = False, script: Script | None = None) -> list[Verb]:
    w = words(language)
    script = script or Script(language)
    script.say(w.details if details else w.voicemail)
    return script.then(Record(urls.recorded, urls.recording)).then(Hangup()).verbs


def hold(language: Language, urls: Urls, told: str) -> list[Verb]:
    """After a page: tell the caller, and hold them while the engineer is woken."""
    return Script(language).say(told).say(words(language).hold).then(Redirect(urls.wait_round(0))).verbs


def waiting(language: Language, urls: Urls, round_: int) -> list[Verb]:
    """One more pause on hold, or, once the rounds are spent, the voicemail for details."""
    if round_ + 1 >= WAIT_ROUNDS:
        return voicemail(language, urls, details=True)
    return [Pause(WAIT_SECONDS), Redirect(urls.wait_round(round_ + 1))]


def connect(language: Language, name: str, number: str, line_number: str) -> list[Verb]:
    return (
        Script(language)
        .say(words(language).connecting.format(name=name))
        .then(Dial(number, line_number))
        .then(Hangup())
        .verbs
    )


def parse_ticket_number(digits: str) -> int | None:
    """A ticket number typed on the keypad (the pound key already stripped by the provider)."""
    typed = digits.strip().strip("#*")
    return int(typed) if TICKET_DIGITS.fullmatch(typed) and int(typed) > 0 else None


# A provider's call states, mapped to what the desk records of a page call.
CALL_DELIVERED = frozenset({"completed", "answered", "in-progress"})
CALL_FAILED = frozenset({"busy", "no-answer", "failed", "canceled"})
