"""The pipeline's tests load the sample bot as the bot's tests do."""

from tests.bot.conftest import cache  # noqa: F401 - shared fixture
