"""Shopify webhooks after the 200: the inbox, the worker, what each topic does.

    inbox.py            store an event once (INSERT … ON CONFLICT DO NOTHING); parse Shopify's times
    worker.py           claim stored events, handle them, record the outcome ([webhooks] workers threads)
    worker_log.py       the worker's log: a DEBUG line per event, an INFO summary a minute
    stored.py           a claimed event as handlers see it (StoredEvent) and their answer (Handled)
    topics.py           what orders/create, app/uninstalled and the compliance topics do
    order_updates.py    what a run of orders/updated does: compare, alert, snapshot; older updates superseded
    order_snapshots.py  what an orders/updated is compared with; snapshots read and written a run at a time
    reconcile.py        the alerts a lost webhook would have raised, from the orders query
    refund_alerts.py    what orders/cancelled and refunds/create do (shopify-refund-alert jobs)
    stock.py            inventory_levels/update → low / out-of-stock alerts (crossing state in the job memory)
    risk.py             orders/create, orders/risk_assessment_changed → high-risk order alerts
    unfulfilled.py      the periodic check for orders unfulfilled longer than a job's `hours`

May import delivery and connect and everything below them (bot.app, tokens, jobs, store, config,
kakao, shopify, util); not web, service or cli.
"""
