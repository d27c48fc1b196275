"""bot.service.run."""
