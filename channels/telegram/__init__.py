"""Telegram bots through python-telegram-bot (PTB); the channel is `plugin.TelegramChannel`."""

import logging
import os

# PTB 22 returns durations as timedelta once this is set, and warns on every RetryAfter (and
# every media duration) until then: we opt in to the behaviour PTB is moving to. Set before
# any module of the package runs (PTB reads it when it builds such a value).
os.environ.setdefault("PTB_TIMEDELTA", "true")

# httpx (PTB's HTTP client) logs every request's address at INFO, and the Bot API carries the
# bot token in the address: those lines would put the token in the server's logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
