"""Every secret the bot holds: encrypted at rest, and the Kakao and Shopify tokens minted on demand.

    vault.py         encryption at rest (Fernet, BOT_SECRET_KEY)
    models.py        the stored Kakao logins and Shopify installs
    minting.py       the lock-and-refresh skeleton both minters refresh under (one refresh per login at a time)
    kakao.py         Kakao access tokens from stored refresh tokens, rotation kept
    shopify.py       Shopify access tokens: offline, expiring (refreshed), client credentials, legacy
    login_health.py  whether a stored login can still be decrypted and used

Sits above bot.store, bot.config, bot.kakao, bot.shopify and bot.util; imported by bot.app and above.
"""
