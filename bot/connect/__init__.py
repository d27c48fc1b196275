"""Connecting accounts: the Kakao login, the Shopify app install, and their single-use OAuth states.

    kakao_login.py      `kakao login`: the authorization code flow from a terminal (or through `run`)
    shopify_install.py  a Shopify app's OAuth install and what its app URL shows, without Flask
    shopify_embedded.py the embedded app: App Bridge session tokens in, installs by token exchange
    merchant_kakao.py   each embedded app merchant's own Kakao login: connect, status, friends, forget
    oauth_states.py     single-use `state` values in the database
    webhook_needs.py    the webhook topics and scopes the configured jobs need; a shop's subscriptions kept in step

May import bot.app, tokens, jobs, store, config, kakao, shopify, util; not delivery (a sibling), and
nothing above.
"""
