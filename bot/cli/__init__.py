"""The command line (`python -m bot …`): one module per command group, and the demo.

    main.py               the root group and the core commands (run, send-now, demo, db)
    preview_jobs.py       `preview`: each recipient's message, alert jobs with made-up events (jobs.samples)
    kakao.py, shopify.py  the `kakao` and `shopify` groups; ops.py: `history` and `jobs` tables
    common.py             exit codes, the per-invocation state, output helpers
    display.py            how a delivery key reads to a person; preview.py: a template as plain text
    progress_terminal.py  progress drawn with rich (loaded only by a command that draws)
    demo.py, demo_shopify.py  the whole pipeline once, against the local stand-ins

Top layer: may import every layer below (service, web, webhooks, connect, delivery, bot.app, tokens,
jobs, store, config, kakao, shopify, util) and the stand-ins (bot.sandbox) for the demo.
"""
