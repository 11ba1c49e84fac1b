"""Bot folders: what is read, and mistakes reported with the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.bot_folder import BotFolderError, load_bot_folder
from tests.bot.conftest import SAMPLE_BOT

DOMAIN = """
version: "3.1"
slots:
  email:
    type: text
    validate: email
    personal: true
forms:
  contact_form:
    required_slots: [email]
responses:
  utter_hi:
    - text: hi
  utter_ask_email:
    - text: your e-mail?
"""
RULES = """
rules:
  - rule: hi
    steps:
      - intent: greet
      - action: utter_hi
"""


def make_bot(tmp_path: Path, domain: str = DOMAIN, rules: str = RULES) -> Path:
    (tmp_path / "domain.yml").write_text(domain, encoding="utf-8")
    (tmp_path / "rules.yml").write_text(rules, encoding="utf-8")
    (tmp_path / "nlu.yml").write_text('nlu:\n  - intent: greet\n    examples: |\n      - hi\n', encoding="utf-8")
    return tmp_path


def test_the_sample_bot_loads_with_its_forms_policy_and_languages() -> None:
    bot = load_bot_folder(SAMPLE_BOT)
    assert bot.forms["order_status_form"].required_slots == ["order_number", "email"]
    assert [a.kind for a in bot.forms["order_status_form"].on_submit] == ["response", "handoff"]
    assert [a.kind for a in bot.rules["order_status"]] == ["response", "form"]
    assert [a.kind for a in bot.form_rules[("order_status_form", "cancel")]] == ["deactivate", "response"]
    assert bot.slots["email"].personal and bot.slots["email"].customer_field == "email"
    assert bot.slots["order_number"].attribute == "last_order_number"
    assert bot.policy.fallbacks_before_handoff == 2 and bot.policy.vip_tags == {"vip"}
    assert bot.policy.route("complaint").priority == "high"
    assert {v.lang for v in bot.responses["utter_greet"]} == {None, "ko"}
    assert [p.name for p in bot.nlu_files] == ["nlu.yml"]
    faqs = [i for i in bot.rules if i.startswith("faq_")]
    assert len(faqs) == 4


def test_builtin_responses_fill_what_a_bot_does_not_define(tmp_path: Path) -> None:
    bot = load_bot_folder(make_bot(tmp_path))
    assert "utter_default" in bot.responses and "utter_form_cancelled" in bot.responses


@pytest.mark.parametrize(
    ("domain", "rules", "problem"),
    [
        (DOMAIN + "  bad: [", RULES, "domain.yml:"),
        (DOMAIN, RULES.replace("utter_hi", "utter_missing"), "uses response utter_missing that domain.yml does not define"),
        (DOMAIN, RULES.replace("utter_hi", "action_lookup_order"), "custom actions are not supported"),
        (DOMAIN.replace("[email]", "[phone]"), RULES, "form contact_form requires slot phone"),
        (DOMAIN.replace("utter_ask_email", "utter_ask_mail"), RULES, "needs a response utter_ask_email"),
        (DOMAIN.replace("validate: email", "validate: postcode"), RULES, "slot email has validate: postcode"),
        (DOMAIN + "policy:\n  fallbacks_before_handof: 3\n", RULES, "unknown setting fallbacks_before_handof"),
        (DOMAIN + "policy:\n  vip_handoff: {team: vip, priority: asap}\n", RULES, "priority asap"),
        (DOMAIN.replace("text: hi", "text: 'hi {name'"), RULES, "broken {placeholder}"),
        (DOMAIN, RULES + "      - handoff: {team: billing, priority: soon}\n", "priority soon"),
        (DOMAIN, RULES + "  - rule: again\n    steps:\n      - intent: greet\n      - action: utter_hi\n", "both answer intent greet"),
        (DOMAIN, "rules:\n  - rule: x\n    steps:\n      - action: utter_hi\n", "must start with an intent"),
        (DOMAIN, "rules:\n  - rule: x\n    condition:\n      - active_loop: nope_form\n    steps:\n      - intent: greet\n      - action: utter_hi\n",
         "active_loop nope_form"),
        (DOMAIN.replace("    type: text\n", "    type: text\n    pattern: '(['\n"), RULES, "not a valid regular expression"),
    ],
)
def test_mistakes_name_the_file_and_the_problem(tmp_path: Path, domain: str, rules: str, problem: str) -> None:
    with pytest.raises(BotFolderError) as info:
        load_bot_folder(make_bot(tmp_path, domain, rules))
    message = str(info.value)
    assert problem in message
    assert "domain.yml" in message or "rules.yml" in message


def test_a_missing_folder_or_domain_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BotFolderError, match="does not exist"):
        load_bot_folder(tmp_path / "nope")
    with pytest.raises(BotFolderError, match="domain.yml is missing"):
        load_bot_folder(tmp_path)


def test_bad_nlu_data_is_reported_when_the_folder_is_read(tmp_path: Path) -> None:
    bot = make_bot(tmp_path)
    (bot / "nlu.yml").write_text("nlu:\n  - intent: greet\n    examples: 42\n", encoding="utf-8")
    with pytest.raises(BotFolderError, match=r"nlu\.yml"):
        load_bot_folder(bot)


async def test_the_keyword_matcher_still_reads_the_sample() -> None:
    from bot.keywords import KeywordParser

    parser = KeywordParser.from_files(load_bot_folder(SAMPLE_BOT).nlu_files)
    assert (await parser.parse("where is my order please"))["intent"]["name"] == "order_status"
    assert (await parser.parse("상담원 연결해 주세요"))["intent"]["name"] == "human_handoff"
