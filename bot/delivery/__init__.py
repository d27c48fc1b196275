"""bot.delivery."""
