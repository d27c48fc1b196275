"""bot.webhooks.inbox."""
