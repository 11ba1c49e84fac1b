"""Korea's rules for advertising messages (Information and Communications Network Act, article 50).

An advertising message starts with "(광고)" and the sender's name, and ends
with a free way to opt out.  They apply to customers whose locale is Korean,
or to everyone when a campaign says so; the night-time rule (no advertising
21:00-08:00 local without its own consent) is applied where recipients'
send times are planned (campaigns.runner).
"""

from __future__ import annotations

PREFIX = "(광고)"
OPT_OUT_LINE = {
    "ko": "무료 수신거부: 이 대화에 '수신거부'라고 보내주세요.",
    "en": "To stop these messages for free, reply STOP.",
}


#: The language of the customers the rules apply to whatever the campaign's setting (a locale ``ko``, ``ko-KR``, ``ko_KR``).
KOREAN = "ko"


def korean_rules_apply(setting: str, locale: str | None) -> bool:
    return setting == "everyone" or (locale or "").lower().replace("_", "-").split("-")[0] == KOREAN


def advertise(text: str, sender: str, locale: str | None) -> str:
    """The message with its "(광고) sender" head and opt-out line (added once: a template that has them keeps them)."""
    lang = "ko" if (locale or "").lower().startswith("ko") else "en"
    head = f"{PREFIX} {sender}".strip()
    body = text if text.startswith(PREFIX) else f"{head}\n{text}"
    line = OPT_OUT_LINE[lang]
    return body if line in body else f"{body}\n\n{line}"
