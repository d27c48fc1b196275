"""kakao-shopify-bot: keeps a shop owner and their staff informed in KakaoTalk.

One subpackage per concern, layered: each imports only the layers below it (import-linter
contracts in pyproject.toml, checked by `lint-imports`):

    cli | service | web           commands; `run` (life cycle, scheduler, systemd); the HTTP server
    webhooks                      Shopify webhooks after the 200: inbox, worker, topics, reconcile
    connect | delivery            Kakao login and Shopify install; fan-out, runner, alerts, problems
    app.py                        the composition root: an App wires config, database, vault and clients
    tokens/ | jobs/               every secret (vault, token minting); one module per job kind
    store                         database: engine, sessions, tables, migrations, claims
    config                        typed settings, the one loader of config.toml, plan checks, secrets
    kakao | shopify               the upstream clients, knowing nothing of each other
    util                          retry, logs, times, background loop, HTTP session

`__main__.py` runs the CLI; `wsgi.py` serves the web app under another WSGI server; `sandbox/`
holds the local stand-ins of Kakao, Shopify and a web page (tests, benchmarks, `demo`).
"""

__version__ = "0.1.0"
