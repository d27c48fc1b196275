"""`run`, the long-running service: its life cycle, the scheduler, systemd.

    run.py             start, serve (waitress), background workers, graceful stop
    scheduler.py       configured jobs at their slots and cron times (APScheduler 3 behind a small API),
                       the embedded app merchants' jobs beside them; slot_marks.py: seen / done per job
    scheduler_text.py  what the scheduler tells: next runs, its log lines
    last_runs.py       each job's last run in this process, for /healthz
    systemd.py         sd_notify: READY, STOPPING, WATCHDOG

May import web, webhooks, connect, delivery and everything below them; not cli.
"""
