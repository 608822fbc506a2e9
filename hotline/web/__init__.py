"""The admin web and JSON API (aiohttp)."""
