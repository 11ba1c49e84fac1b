"""Turns an understood message into a decision: what to say, what to ask, whom to call.

``RuleBot.decide`` is a plain synchronous function: the store calls it inside
the write transaction, in arrival order, only while the conversation belongs
to the bot (status ``bot``).  It does no I/O; everything it needs is in the
``Turn`` (the message, the NLU parse, the customer and the conversation with
its ``bot_state``), and everything it wants done is in the ``Decision``.

Opt-out and opt-in words (STOP, 수신거부, START) never reach the rules: the
engine answers them first, whoever holds the conversation
(:mod:`bot.engine.opt_out`).  The order of precedence on any other message:

1. a customer with a VIP tag goes straight to the VIP team;
2. a running form gets the message: a valid value fills the slot asked for;
   otherwise ``cancel`` ends the form without writing, a request for a person
   hands off, an FAQ is answered and the question asked again, and anything
   else is told what was wrong (after ``max_form_attempts`` a person takes over);
3. an understood intent runs its rule (responses, a form, a handoff);
4. a message not understood gets ``utter_default``; the second in a row
   (``fallbacks_before_handoff``) goes to a person.

``bot_state`` keeps ``form`` (name, slots, requested, attempts, intent),
``fallbacks`` (not-understood messages in a row) and ``lang``.
"""

from __future__ import annotations

import random
import string
from typing import Any

from bot.bot_folder import Action, BotFolder, FormSpec, HandoffTarget, ResponseVariant
from bot.engine.turn import Decision, Handoff, Reply, Turn
from bot.engine.waiting import Waiting, wait_phrase
from bot.forms import candidate, validate
from bot.language import message_language
from contracts.messages import Attachment
from nlu import FALLBACK_INTENT

__all__ = ["RuleBot", "fill", "intent_name", "message_language"]


class _Fields(dict[str, Any]):
    """Leaves an unknown ``{placeholder}`` as written instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


def fill(template: str, fields: dict[str, Any]) -> str:
    values = _Fields({k: v for k, v in fields.items() if v is not None})
    try:
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, IndexError, AttributeError, KeyError):
        return template


def intent_name(parse: dict[str, Any] | None) -> str:
    if not parse:
        return FALLBACK_INTENT
    intent = parse.get("intent") or {}
    return str(intent.get("name") or FALLBACK_INTENT)


class _Step:
    """The decision being built for one turn, and the bot_state it will leave behind."""

    __slots__ = ("turn", "decision", "state", "lang", "changed", "intent")

    def __init__(self, turn: Turn, state: dict[str, Any], lang: str, intent: str) -> None:
        self.turn = turn
        self.decision = Decision(intent=intent)
        self.state = state
        self.lang = lang
        self.changed = False
        self.intent = intent

    def set(self, key: str, value: Any) -> None:
        if self.state.get(key) != value:
            if not self.changed:
                self.state = dict(self.state)
                self.changed = True
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    def finish(self) -> Decision:
        if self.changed:
            self.decision.bot_state = self.state
        return self.decision


class RuleBot:
    def __init__(self, folder: BotFolder, *, rng: random.Random | None = None) -> None:
        self.folder = folder
        self.policy = folder.policy
        self.rng = rng or random.Random()
        self.languages = frozenset(self.policy.languages) | {self.policy.default_language}
        self._index: dict[str, dict[tuple[str | None, str], list[ResponseVariant]]] = {}
        for name, variants in folder.responses.items():
            index: dict[tuple[str | None, str], list[ResponseVariant]] = {}
            for v in variants:
                index.setdefault((v.channel, v.lang or self.policy.default_language), []).append(v)
            self._index[name] = index
        self._answer_only = {intent for intent, actions in folder.rules.items() if all(a.kind == "response" for a in actions)}

    # --- responses -------------------------------------------------------------------

    def pick(self, name: str, channel: str, lang: str, available: set[str] | None = None) -> ResponseVariant:
        index = self._index[name]
        default = self.policy.default_language
        chosen = (index.get((channel, lang)) or index.get((None, lang)) or index.get((channel, default))
                  or index.get((None, default)) or self.folder.responses[name])
        if available is not None and len(chosen) > 1:
            fillable = [v for v in chosen if v.fields <= available]
            chosen = fillable or chosen
        return chosen[0] if len(chosen) == 1 else self.rng.choice(chosen)

    def render(self, name: str, turn: Turn, slots: dict[str, Any] | None = None, lang: str | None = None) -> Reply:
        lang = lang or message_language(turn.message.text, turn.customer.locale, default=self.policy.default_language)
        if lang not in self.languages:
            lang = self.policy.default_language
        variants = self.folder.responses[name]
        needs_fields = any(v.fields for v in variants)
        fields: dict[str, Any] | None = None
        if needs_fields:
            fields = {k: v for k, v in turn.customer.as_fields().items() if v not in (None, "")}
            if slots:
                fields.update(slots)
        variant = self.pick(name, turn.message.channel, lang, set(fields) if fields is not None else None)
        attachments = [Attachment(type="image", url=variant.image)] if variant.image else []
        text = variant.text
        if text and variant.fields and fields is not None:
            text = fill(text, fields)
        return Reply(text=text, buttons=list(variant.buttons), attachments=attachments, metadata={"response": name})

    def _say(self, step: _Step, name: str, slots: dict[str, Any] | None = None) -> None:
        step.decision.replies.append(self.render(name, step.turn, slots, step.lang))

    # --- the decision ----------------------------------------------------------------

    def decide(self, turn: Turn) -> Decision:
        if turn.waiting is not None:
            return self._acknowledge_wait(turn, turn.waiting)
        if turn.conversation.status != "bot":
            return Decision()  # a person holds it (the store does not call us then, but be sure)
        parse = turn.parse
        intent = intent_name(parse)
        confidence = float(((parse or {}).get("intent") or {}).get("confidence") or 0.0)
        policy = self.policy
        understood = intent not in policy.fallback_intents and confidence >= policy.fallback_threshold
        state = turn.conversation.bot_state or {}
        lang = message_language(turn.message.text, turn.customer.locale, state.get("lang"), policy.default_language)
        if lang not in self.languages:
            lang = policy.default_language
        step = _Step(turn, state, lang, intent if understood else FALLBACK_INTENT)
        if state.get("lang") != lang:
            step.set("lang", lang)

        if policy.vip_tags and not state.get("vip_routed") and not policy.vip_tags.isdisjoint(turn.customer.tags):
            self._say(step, policy.vip_response)
            self._handoff(step, policy.vip_handoff, "vip customer")
            step.set("vip_routed", True)  # if a person hands the conversation back, the bot answers
            return step.finish()

        form_state = state.get("form")
        if form_state and form_state.get("name") in self.folder.forms:
            self._form_turn(step, form_state, understood)
            return step.finish()
        if form_state:
            step.set("form", None)  # the form was removed from the bot since

        if understood and intent in self.folder.rules:
            step.set("fallbacks", None)
            self._run(step, self.folder.rules[intent], intent)
        elif understood and intent in policy.human_intents:
            step.set("fallbacks", None)
            self._say(step, policy.human_handoff_response)
            self._handoff(step, policy.route(intent), f"asked for a person ({intent})")
        else:
            self._fallback(step)
        return step.finish()

    def _acknowledge_wait(self, turn: Turn, waiting: Waiting) -> Decision:
        """The customer waits for a person: say so (with the expected wait), at most once in a while,
        but always when they ask for a person again."""
        if waiting.recent and intent_name(turn.parse) not in self.policy.human_intents:
            return Decision()
        state = turn.conversation.bot_state or {}
        lang = message_language(turn.message.text, turn.customer.locale, state.get("lang"), self.policy.default_language)
        if lang not in self.languages:
            lang = self.policy.default_language
        if waiting.wait_seconds is None:
            return Decision(replies=[self.render("utter_waiting_for_person", turn, lang=lang)])
        return Decision(replies=[self.render("utter_waiting_for_person_eta", turn, {"wait": wait_phrase(waiting.wait_seconds, lang)},
                                             lang)])

    def _fallback(self, step: _Step) -> None:
        policy = self.policy
        count = int(step.state.get("fallbacks") or 0) + 1
        if policy.fallbacks_before_handoff and count >= policy.fallbacks_before_handoff:
            self._say(step, policy.fallback_handoff_response)
            self._handoff(step, policy.fallback_handoff, f"{count} messages not understood")
            return
        step.set("fallbacks", count)
        actions = self.folder.rules.get(FALLBACK_INTENT) or [Action("response", policy.fallback_response)]
        self._run(step, actions, FALLBACK_INTENT)

    def _handoff(self, step: _Step, target: HandoffTarget, reason: str) -> None:
        step.decision.handoff = Handoff(team=target.team, priority=target.priority, reason=reason)
        step.set("form", None)
        step.set("fallbacks", None)

    def _run(self, step: _Step, actions: list[Action], intent: str, slots: dict[str, Any] | None = None) -> None:
        for action in actions:
            if action.kind == "response":
                self._say(step, action.name or "", slots)
            elif action.kind == "handoff":
                route = self.policy.route(intent)
                target = HandoffTarget(action.team or route.team, action.priority or route.priority)
                self._handoff(step, target, f"intent {intent}" if intent != FALLBACK_INTENT else "not understood")
            elif action.kind == "form":
                self._start_form(step, self.folder.forms[action.name or ""], intent)
                return  # the form now leads the conversation
            elif action.kind == "deactivate":
                step.set("form", None)
            elif action.kind == "restart":
                step.state, step.changed = {"lang": step.lang}, True

    # --- forms -----------------------------------------------------------------------

    def _start_form(self, step: _Step, form: FormSpec, intent: str) -> None:
        state: dict[str, Any] = {"name": form.name, "slots": {}, "requested": None, "attempts": 0, "intent": intent}
        self._fill_from_entities(step, form, state)
        self._next_question(step, form, state)

    def _fill_from_entities(self, step: _Step, form: FormSpec, state: dict[str, Any]) -> None:
        for slot_name in form.required_slots:
            if slot_name in state["slots"] or slot_name == state.get("requested"):
                continue
            slot = self.folder.slots[slot_name]
            raw = candidate(slot, step.turn.parse, None, requested=False)
            value = validate(slot, raw, self.policy.phone_regions) if raw else None
            if value is not None:
                state["slots"][slot_name] = value

    def _next_question(self, step: _Step, form: FormSpec, state: dict[str, Any]) -> None:
        for slot_name in form.required_slots:
            if slot_name not in state["slots"]:
                state["requested"] = slot_name
                state["attempts"] = 0
                step.set("form", state)
                self._say(step, self.folder.ask_response(form.name, slot_name), state["slots"])
                return
        self._submit(step, form, state)

    def _submit(self, step: _Step, form: FormSpec, state: dict[str, Any]) -> None:
        step.set("form", None)
        decision = step.decision
        channel = step.turn.message.channel
        for slot_name in form.required_slots:
            slot = self.folder.slots[slot_name]
            value = state["slots"][slot_name]
            if slot.customer_field:
                decision.customer_updates[slot.customer_field] = value
            elif slot.attribute:
                decision.attributes[slot.attribute] = value
            if slot.personal:
                consent_channel = slot.consent_channel or (slot.customer_field or channel)
                decision.consents.append((consent_channel, slot.consent_purpose, True))
        self._run(step, form.on_submit, state.get("intent") or form.name, state["slots"])

    def _form_turn(self, step: _Step, form_state: dict[str, Any], understood: bool) -> None:
        form = self.folder.forms[form_state["name"]]
        state = {**form_state, "slots": dict(form_state.get("slots") or {})}
        requested = state.get("requested")
        if requested not in form.required_slots:
            self._next_question(step, form, state)
            return
        slot = self.folder.slots[requested]
        turn = step.turn
        intent = step.intent
        raw = candidate(slot, turn.parse, turn.message.text, requested=True)
        if raw is not None and raw.startswith("/"):
            raw = None  # a button payload is never a slot value
        value = validate(slot, raw, self.policy.phone_regions) if raw else None
        typed = slot.validate not in ("text", "any")
        if value is None or not typed:
            if understood and (form.name, intent) in self.folder.form_rules:
                self._run(step, self.folder.form_rules[(form.name, intent)], intent)
                if step.state.get("form") and step.decision.handoff is None:
                    self._say(step, self.folder.ask_response(form.name, requested), state["slots"])
                return
            if understood and intent in self.policy.cancel_intents:
                step.set("form", None)
                self._say(step, self.policy.cancelled_response)
                return
            if understood and intent in self.policy.human_intents:
                step.set("form", None)
                self.decide_intent_outside_form(step, intent)
                return
        if value is not None:
            state["slots"][requested] = value
            state["requested"] = None
            self._fill_from_entities(step, form, state)
            step.set("fallbacks", None)
            self._next_question(step, form, state)
            return
        if understood and intent in self._answer_only and intent != FALLBACK_INTENT:
            self._run(step, self.folder.rules[intent], intent)  # an FAQ in the middle: answer, then ask again
            self._say(step, self.folder.ask_response(form.name, requested), state["slots"])
            return
        state["attempts"] = int(state.get("attempts") or 0) + 1
        if self.policy.max_form_attempts and state["attempts"] >= self.policy.max_form_attempts:
            self._say(step, self.policy.give_up_response)
            self._handoff(step, self.policy.route(state.get("intent")), f"form {form.name}: no valid {requested}")
            return
        step.set("form", state)
        invalid = f"utter_invalid_{form.name}_{requested}"
        if invalid not in self.folder.responses:
            invalid = f"utter_invalid_{requested}"
        if invalid not in self.folder.responses:
            invalid = f"utter_invalid_{slot.validate if slot.validate != 'any' else 'text'}"
        shown = (turn.message.text or "").strip()
        self._say(step, invalid, {**state["slots"], "value": shown[:80] + ("…" if len(shown) > 80 else "")})
        self._say(step, self.folder.ask_response(form.name, requested), state["slots"])

    def decide_intent_outside_form(self, step: _Step, intent: str) -> None:
        """Run ``intent``'s ordinary rule (used when a request for a person interrupts a form)."""
        if intent in self.folder.rules:
            self._run(step, self.folder.rules[intent], intent)
        else:
            self._say(step, self.policy.human_handoff_response)
            self._handoff(step, self.policy.route(intent), f"asked for a person ({intent})")
