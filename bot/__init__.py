"""kakao-shopify-bot: keeps a shop owner and their staff informed in KakaoTalk."""

__version__ = "0.1.0"
