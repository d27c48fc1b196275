"""Token storage: every secret the bot holds, encrypted at rest, and Kakao token minting."""
