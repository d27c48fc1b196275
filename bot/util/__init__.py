"""Small things every layer uses; imports nothing of the project but bot's version.

    retry.py          the one place that decides retries, and what can pass
    logs.py           logging to stderr with token masking; redaction.py: the process's secret values scrubbed
    report_logging.py log lines a printing command drops; progress.py: progress of long work
    times.py          slot times, cron, durations, stored instants; quiet_hours.py: "22:00-07:00"
    background.py     a daemon thread calling one function until stopped
    http.py           the one way a requests session is made; urls.py: host:port, same origin
    keys.py           stored keys fitted to their columns (the byte-exact shortening of every stored key)
    compare.py        constant-time comparison of a secret with what a caller sent, never raising
    chart_process.py  a chart drawn in a child process; chart_png.py: that child (matplotlib, the
                      Korean font in fonts/), never imported by the service
"""
