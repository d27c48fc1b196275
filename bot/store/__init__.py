"""The database: engine and sessions, tables, migrations, and the bookkeeping stored in them.

    db.py            engine, sessions, write_session (SQLite's in-process write queue), Core write transactions
                     (write_transaction, run_write: the one retry on a dead connection), migrations
    group_commit.py  concurrent short writes sharing one commit (SQLite: one wait for the disk)
    models.py        tables: deliveries, job memory, webhook events, order snapshots, merchant settings;
                     migrations/: Alembic
    claims.py        the one claim engine: who holds a row, when a claim is abandoned, the guarded UPDATE
    deliveries.py    the delivery log: claim, sending, sent / failed / unknown / skipped
    job_memory.py    a job's small persisted memory; order_names.py: `#1001` behind an alert's key
    quota_counts.py  Kakao's quotas counted from the deliveries table
    sqlite_scrub.py  deleted personal data gone from the SQLite files too
    merchant_settings.py  embedded app merchants' settings, versioned, and the clock instances poll

May import config, kakao, shopify and util; nothing above.
"""
