"""The Kakao client, knowing nothing of Shopify, the database or the config file.

    client.py      OAuth at kauth (authorize URL, code exchange, refresh) and the message API at kapi
    errors.py      Kakao's errors as named exceptions, chosen by the numeric code
    templates.py   template_object builders that only produce templates Kakao accepts
    quota.py       Kakao's daily quotas as rules (no SQL: the counts are bot.store.quota_counts)
    recipients.py  `me`, `friend:<nickname>`, `uuid:<uuid>`, and resolving them against the friends list

May import bot.util only.
"""
