"""bot.connect."""
