"""bot.kakao."""
