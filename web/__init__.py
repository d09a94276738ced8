"""The aiohttp application, REST API, public forms, websocket and CLI (composition root)."""
