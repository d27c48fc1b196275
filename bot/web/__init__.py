"""The HTTP server of `run`: a Flask app factory and its routes.

    server.py          create_app(): blueprints, JSON errors, body limit, access log
    context.py         what a route reaches the bot through: bot_app(), error_response() (Flask's globals.py)
    health.py          GET /healthz; health_access.py: who may read its details
    kakao_callback.py  GET /kakao/callback (the Kakao login's redirect)
    shopify_routes.py  the Shopify app URL, install start and OAuth callback
    embedded_api.py    the embedded app's JSON API (/shopify/<app>/api/…), session tokens only, one shop each
    webhook_intake.py  POST /shopify/<app>/webhooks: verify, store, answer
    http_limits.py     waitress connection limits and timeouts; rate_limit.py: per-client limits

May import webhooks, connect, delivery and everything below them; not service or cli.
"""
