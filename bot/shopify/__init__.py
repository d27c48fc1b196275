"""bot.shopify."""
