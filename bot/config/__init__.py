"""bot.config.model."""
