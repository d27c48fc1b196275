"""Delivering messages: one job for one slot, order alerts, and the problems a person must hear of.

    runner.py         one job for one slot: collect → recipients → render → fan-out → remember;
                      run_report.py: what a run came to
    audience.py       who a delivery goes to: the sender's friends, the one way a Fanout is built,
                      the message per audience
    fanout.py         one message to its recipients: claim, quota, send in calls of ≤ 5, record
    charts.py         a delivery's chart: drawn once (child process), uploaded once, shared by every recipient
    alerts.py         order alerts through the same machinery, with quiet hours
    alert_summary.py  a quiet-hours summary: the held-alert record, its text, its Kakao list message
    alert_start.py    when alerting started for a (job, shop): older orders are never alerted
    problems.py       problems recorded once and told once (log, /healthz, KakaoTalk to "me")
    health_rules.py   what makes a login or an install unhealthy: the one rule set of /healthz and problems.py
    unknown_sends.py  sends that may or may not have arrived, raised as problems; sweep.py: rows stuck in `sending`
    slot_time.py      when `send-now --slot` may deliver; slot_retries.py: retrying a failed slot within the grace
    triggers.py       a job's `at` as wall-clock triggers in one zone
    trial_message.py  the embedded app's test message, delivered and recorded like any other

May import bot.app, tokens, jobs, store, config, kakao, shopify, util; not connect (a sibling), and
nothing above.
"""
