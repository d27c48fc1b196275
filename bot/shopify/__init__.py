"""The Shopify client, knowing nothing of Kakao, the database or the config file.

    client.py         one HTTP wrapper for a shop's origin, and the app's OAuth token calls
    graphql.py        the Admin GraphQL client: queries, cursor pagination, cost throttling (cost.py)
    orders_query.py   the orders query over a creation window; orders.py: order ids in any shape
    order_events_query.py  orders updated since a moment, with their cancellation and refunds
    inventory.py      one inventory item: its variant's names and its stock summed over locations
    order_checks.py   one order's risk summary, and the open orders left unfulfilled
    shapes.py         every answer's shape checked before anything is made of it
    errors.py         Shopify's failures as named exceptions
    signing.py        shop domains, query-string and webhook HMACs (constant-time)
    session_tokens.py App Bridge session tokens (JWT, PyJWT) verified for one app and shop
    subscriptions.py  webhook subscriptions, and the shopify.app.toml an App Store app declares
    versions.py       API versions and when their support ends

May import bot.util only.
"""
