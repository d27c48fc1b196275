"""Local stand-ins of the upstream APIs, served on 127.0.0.1 for tests, benchmarks and `demo`.

    kakao.py            Kakao OAuth and message API, with Kakao's shapes, codes and quotas;
                        kakao_images.py: its message image upload, and the images served back
    shopify.py          a Shopify shop: OAuth (shopify_oauth.py), Admin GraphQL (shopify_graphql.py),
                        orders (shopify_orders.py), refunds (shopify_refunds.py), inventory and order
                        risk (shopify_inventory.py), webhooks sent to the bot; the admin framing an
                        embedded app, its session tokens, App Bridge and Polaris (shopify_admin.py, cdn/)
    web.py              a web page to scrape
    standin_app.py      the Flask app every stand-in is built on; recording.py: the requests it received;
                        faults.py: scripted failures and delays
    server.py           serving a stand-in (or the bot) on a free loopback port

Outside the layers: the stand-ins sign with bot.shopify.signing, and import nothing of the bot's
higher layers or of Kakao's client (an import-linter contract).
"""
