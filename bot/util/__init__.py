"""bot.util."""
