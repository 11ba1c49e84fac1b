"""The conversation engine: where every inbound message is understood, decided on and stored.

- :mod:`bot.engine.conversation`: :class:`ConversationEngine`, the entry point channels call.
- :mod:`bot.engine.batch`: one batch decided and stored in one transaction (where the bot decides).
- :mod:`bot.engine.turn`: the types of a turn and a decision.

How the batches travel between processes is :mod:`bot.pipeline`'s business.
"""
