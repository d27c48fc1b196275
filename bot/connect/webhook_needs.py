"""What the configured jobs need from a shop: webhook topics and Admin API scopes, and keeping a shop's
subscriptions in step with them.

A job kind module may declare `WEBHOOK_TOPICS` (Shopify's REST topic names) and `SCOPES`; one whose
topics depend on the job's options also has `job_webhook_topics(params)`. A shop needs
`app/uninstalled` plus the union over the jobs of that shop; `shopify app-toml` prints the union over
every job. `sync_shop` subscribes the missing topics and deletes ours (at this server's address only)
that no job needs — at install, at `shopify connect`/`add-token`, and when `run` starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from bot.app import App
from bot.config.model import JobConfig
from bot.shopify.errors import ShopifyError
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.subscriptions import sync, webhook_uri
from jobs import job_kind

log = logging.getLogger(__name__)

ALWAYS = ("app/uninstalled",)


def job_topics(job: JobConfig) -> tuple[str, ...]:
    """The webhook topics one job needs (none for most scheduled kinds)."""
    kind = job_kind(job.kind)
    per_job = getattr(kind, "job_webhook_topics", None)
    return tuple(per_job(job.params)) if per_job is not None else tuple(getattr(kind, "WEBHOOK_TOPICS", ()))


def job_scopes(job: JobConfig) -> tuple[str, ...]:
    return tuple(getattr(job_kind(job.kind), "SCOPES", ()))


def shop_jobs(app: App, shop: str | None) -> list[JobConfig]:
    """The jobs of `shop`, config.toml's and its merchant's; with None, config.toml's jobs about any shop
    (what `shopify app-toml` declares app-wide: merchants' needs are subscribed shop by shop, and
    printing the toml must not need the database)."""
    return [job for job in (app.jobs() if shop else app.config.jobs)
            if isinstance(getattr(job.params, "shop", None), str) and (shop is None or job.params.shop == shop)]


def needed_topics(app: App, shop: str | None = None) -> tuple[str, ...]:
    """app/uninstalled and the topics of the shop's jobs (of all jobs when `shop` is None), in order."""
    return tuple(dict.fromkeys([*(topic for job in shop_jobs(app, shop) for topic in job_topics(job)), *ALWAYS]))


def needed_scopes(app: App, shop: str | None = None) -> dict[str, list[str]]:
    """scope → the names of the jobs that need it."""
    needs: dict[str, list[str]] = {}
    for job in shop_jobs(app, shop):
        for scope in job_scopes(job):
            needs.setdefault(scope, []).append(job.name)
    return needs


def missing_scopes(app: App, shop: str | None, granted: Iterable[str]) -> dict[str, list[str]]:
    """The scopes the shop's jobs need and `granted` lacks (write_X grants read_X) → the jobs needing each."""
    granted = set(granted)
    granted |= {scope.replace("write_", "read_", 1) for scope in granted if scope.startswith("write_")}
    return {scope: jobs for scope, jobs in needed_scopes(app, shop).items() if scope not in granted}


def missing_text(missing: dict[str, list[str]]) -> str:
    """"read_inventory (for stock)": the scopes missing, each with the jobs that need it."""
    return ", ".join(f"{scope} (for {', '.join(jobs)})" for scope, jobs in missing.items())


@dataclass(frozen=True)
class Synced:
    shop: str
    uri: str
    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    error: str | None = None


def sync_shop(app: App, gql: ShopifyGraphQL, shop: str, app_name: str) -> Synced:
    """Subscribe what the shop's jobs need and delete ours nobody needs; a failure is returned, not raised."""
    uri = webhook_uri(app.config.server.public_url, app_name)
    try:
        created, deleted = sync(gql, uri, needed_topics(app, shop))
    except ShopifyError as exc:
        log.warning("%s: webhook subscriptions of app %r could not be brought in step with the jobs: %s",
                    shop, app_name, exc)
        return Synced(shop, uri, error=str(exc))
    return Synced(shop, uri, tuple(created), tuple(deleted))


def sync_all(app: App, graphql_for: Callable[[str, str], ShopifyGraphQL]) -> list[Synced]:
    """`sync_shop` for every active install (at `run`'s start); `graphql_for(shop, app_name)`."""
    done = []
    for status in app.shopify_tokens.all_status():
        if status.active:
            done.append(sync_shop(app, graphql_for(status.shop, status.app), status.shop, status.app))
            missing = missing_scopes(app, status.shop, status.scopes)
            if missing:
                log.warning("%s: app %r was not granted %s: those jobs will fail; grant the scopes in the app's "
                            "configuration and install again", status.shop, status.app, missing_text(missing))
    return done
