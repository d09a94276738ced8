"""Telegram bots (python-telegram-bot): see plugin.py."""
