"""config.toml parsing: every refusal names file, key and reason; defaults; quota plan warnings; the CLI."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from bot.app import load_config
from bot.cli.main import cli
from bot.config import loader as config_module
from bot.config.model import ConfigError
from bot.kakao.recipients import Recipient
from jobs import job_kind, known_kinds, scrape
from jobs.scrape import ScrapeParams

REPO = Path(__file__).resolve().parents[3]

def scrape_job(*lines: str, at: str = '["noon"]', to: str = '["me"]', name: str = '"menu"') -> str:
    """A valid scrape job, plus `lines`; at/to/name may be replaced (None = left out)."""
    parts = ["[[jobs]]", 'kind = "scrape"', 'url = "https://example.com/menu"', 'select = "ul.menu > li"']
    if name is not None:
        parts.append(f"name = {name}")
    if at is not None:
        parts.append(f"at = {at}")
    if to is not None:
        parts.append(f"to = {to}")
    return "\n".join([*parts, *lines]) + "\n"


def refused(write_config: Callable[..., Path], body: str) -> ConfigError:
    path = write_config(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.file == str(path)
    # The message a person reads carries all three.
    assert str(error) == f"{path}: {error.key}: {error.reason}"
    return error


def assert_refused(write_config: Callable[..., Path], body: str, key: str, reason: str) -> ConfigError:
    error = refused(write_config, body)
    assert error.key == key, str(error)
    assert re.search(reason, error.reason), str(error)
    return error


# -- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, key", [
    ('colour = "red"', "colour"),
    ('[database]\nuser = "bot"', "database.user"),
    ('[server]\nport = 8080', "server.port"),
    ('[kakao]\nclient_secret = "x"', "kakao.client_secret"),
    ('[shopify]\nshop = "x.myshopify.com"', "shopify.shop"),
    ('[[shopify.apps]]\nname = "a"\napi_secret = "x"', "shopify.apps[0].api_secret"),
    ('[delivery]\nretries = 3', "delivery.retries"),
    (scrape_job('colour = "red"'), "jobs[0].colour"),
    # A key of another job kind is unknown to this one.
    (scrape_job('shop = "x.myshopify.com"'), "jobs[0].shop"),
])
def test_unknown_key_is_refused_by_name(write_config, body, key):
    error = assert_refused(write_config, body, key, r"^unknown key \(known: ")
    # The reason lists what would have been accepted.
    known = error.reason.removeprefix("unknown key (known: ").rstrip(")").split(", ")
    assert key.rsplit(".", 1)[-1] not in known
    assert known == sorted(known)


def test_unknown_key_of_a_job_lists_the_kind_keys(write_config):
    error = refused(write_config, scrape_job("colour = 1"))
    for key in ("name", "kind", "at", "to", "from", "skip_if_empty", "template", *scrape.PARAM_KEYS):
        assert re.search(rf"\b{key}\b", error.reason)


# -- wrong types -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, key, reason", [
    ("timezone = 9", "timezone", "must be a string, got int"),
    ('timezone = ["Asia/Seoul"]', "timezone", "must be a string, got list"),
    ('database = "sqlite:///x.db"', "database", "must be a table, got str"),
    ("[database]\nurl = 5", "database.url", "must be a string, got int"),
    ("[server]\nlisten = 8080", "server.listen", "must be a string, got int"),
    ('[kakao]\ntimeout = "10"', "kakao.timeout", "must be an integer or a number, got str"),
    ("[kakao]\ntimeout = true", "kakao.timeout", "got a boolean"),
    ("[kakao]\ntimeout = 0", "kakao.timeout", "between 0 and 120"),
    ("[kakao]\ntimeout = 121", "kakao.timeout", "between 0 and 120"),
    ("[kakao]\napi_url = true", "kakao.api_url", "must be a string, got a boolean"),
    ('[shopify]\napps = "default"', "shopify.apps", "must be an array, got str"),
    ('[shopify]\napps = ["default"]', "shopify.apps[0]", "must be a table, got str"),
    ("[[shopify.apps]]\nscopes = [1]", "shopify.apps[0].scopes", "list of non-empty strings"),
    ("[[shopify.apps]]\nscopes = true", "shopify.apps[0].scopes", "got a boolean"),
    ('slots = "08:00"', "slots", "must be a table"),
    ("[delivery]\ngrace = 1800", "delivery.grace", "must be a string, got int"),
    ('jobs = "menu"', "jobs", r"array of tables \(\[\[jobs\]\]\)"),
    ('jobs = ["menu"]', "jobs[0]", "must be a table"),
    (scrape_job("skip_if_empty = 1"), "jobs[menu].skip_if_empty", "must be true or false, got int"),
    (scrape_job('skip_if_empty = "yes"'), "jobs[menu].skip_if_empty", "must be true or false, got str"),
    (scrape_job(name='["menu"]'), "jobs[0].name", "must be a string, got list"),
    (scrape_job(at="8"), "jobs[menu].at", "must be an array or a string, got int"),
    (scrape_job(to="{ me = true }"), "jobs[menu].to", "must be an array or a string, got dict"),
    (scrape_job(to='["me", 7]'), "jobs[menu].to", "list of non-empty strings"),
    (scrape_job('from = 1'), "jobs[menu].from", "must be a string, got int"),
    (scrape_job("template = true"), "jobs[menu].template", "must be a string, got a boolean"),
    (scrape_job("max_items = true"), "jobs[menu].max_items", "must be an integer, got bool"),
    (scrape_job('max_items = "20"'), "jobs[menu].max_items", "must be an integer, got str"),
    (scrape_job("max_items = 0"), "jobs[menu].max_items", "between 1 and 100"),
    (scrape_job('timeout = "10"'), "jobs[menu].timeout", "must be a number of seconds"),
    (scrape_job('only_if_changed = "yes"'), "jobs[menu].only_if_changed", "must be true or false"),
])
def test_wrong_type_is_refused(write_config, body, key, reason):
    assert_refused(write_config, body, key, reason)


def test_a_single_string_is_accepted_where_a_list_is_expected(write_config):
    config = load_config(write_config(scrape_job(at='"noon"', to='"me"')))
    assert config.jobs[0].at == ("noon",)
    assert config.jobs[0].to == (Recipient("me"),)


# -- time zone, slots, grace -------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Mars/Olympus", "asia/seoul", "Asia", "", "../etc/passwd", "/etc/localtime"])
def test_bad_time_zone(write_config, zone):
    error = assert_refused(write_config, f'timezone = "{zone}"', "timezone", "unknown time zone")
    assert repr(zone) in error.reason


def test_time_zone_is_applied(write_config):
    config = load_config(write_config('timezone = "Europe/Berlin"'))
    assert str(config.timezone) == "Europe/Berlin"


@pytest.mark.parametrize("value", ['"8:00"', '"24:00"', '"noon"', '"08:60"', '"08:00:00"', '" 08:00"', "800"])
def test_bad_slot_time(write_config, value):
    assert_refused(write_config, f"[slots]\nmorning = {value}", "slots.morning", r'24-hour time "HH:MM"')


@pytest.mark.parametrize("name", ["Morning", '"my slot"', '"1st"', '"night!"'])
def test_bad_slot_name(write_config, name):
    error = refused(write_config, f'[slots]\n{name} = "21:00"')
    assert error.key == f"slots.{name.strip(chr(34))}"
    assert "lower-case" in error.reason


def test_slots_add_to_and_override_the_defaults(write_config):
    config = load_config(write_config('[slots]\nmorning = "07:30"\nnight = "23:59"\nlate_lunch = "00:00"'))
    assert config.slots == {"morning": time(7, 30), "noon": time(12), "evening": time(18),
                            "night": time(23, 59), "late_lunch": time(0)}


@pytest.mark.parametrize("grace", ["30", "half an hour", "-5m", "5 minutes", "1.5h", ""])
def test_bad_grace(write_config, grace):
    error = assert_refused(write_config, f'[delivery]\ngrace = "{grace}"', "delivery.grace", "duration like")
    assert repr(grace) in error.reason


@pytest.mark.parametrize("reserve", ["-1", "51", '"5"', "true"])
def test_bad_quota_reserve(write_config, reserve):
    assert_refused(write_config, f"[delivery]\nquota_reserve = {reserve}", "delivery.quota_reserve", "")


def test_quota_reserve_defaults_to_five_and_can_be_zero(write_config):
    assert load_config(write_config("")).quota_reserve == 5
    assert load_config(write_config("[delivery]\nquota_reserve = 0")).quota_reserve == 0


@pytest.mark.parametrize("grace, seconds", [("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("0m", 0)])
def test_grace(write_config, grace, seconds):
    assert load_config(write_config(f'[delivery]\ngrace = "{grace}"')).grace_seconds == seconds


# -- when: slots and cron ------------------------------------------------------------------------


@pytest.mark.parametrize("cron, reason", [
    ("0 8 * *", "needs 5 fields"),
    ("0 8 * * * *", "needs 5 fields"),
    ("0 8 * * 1-5", "weekdays as names"),
    ("0 8 * * 0", "weekdays as names"),
    ("0 8 * * */2", "weekdays as names"),
    ("60 8 * * *", "higher than the maximum"),
    ("0 24 * * *", "higher than the maximum"),
    ("0 8 32 * *", "higher than the maximum"),
    ("0 8 * 13 *", "higher than the maximum"),
    ("*/0 8 * * *", "Increment must be higher than 0"),
    ("0 8 * * fri-mon", "must not be higher than the maximum"),
    ("0 8 * * funday", "Invalid weekday name"),
    ("0 8 1 * mon", "not both"),
    ("0 8 30 2 *", "never fires"),
])
def test_bad_cron(write_config, cron, reason):
    error = assert_refused(write_config, scrape_job(at=f'["{cron}"]'), "jobs[menu].at", reason)
    assert error.reason.startswith(f"bad cron expression {cron!r}: ")


def test_numeric_weekday_is_refused_with_a_message_about_names(write_config):
    error = refused(write_config, scrape_job(at='["0 21 * * 1-5"]'))
    assert "mon-fri" in error.reason and "names" in error.reason


def test_unknown_slot_in_at(write_config):
    error = assert_refused(write_config, scrape_job(at='["noon", "midnight"]'), "jobs[menu].at", "unknown slot 'midnight'")
    assert "morning, noon, evening" in error.reason


def test_a_configured_slot_may_be_used(write_config):
    config = load_config(write_config('[slots]\nnight = "21:30"\n' + scrape_job(at='["night", "0 9 * * sat,sun"]')))
    assert config.jobs[0].at == ("night", "0 9 * * sat,sun")


def test_at_is_required_for_a_scheduled_kind(write_config):
    assert_refused(write_config, scrape_job(at=None), "jobs[menu].at", "required")
    assert_refused(write_config, scrape_job(at="[]"), "jobs[menu].at", "required")


def test_a_slot_named_twice_in_at_is_one_run(write_config):
    config = load_config(write_config(scrape_job(at='["noon", "evening", "noon"]')))
    assert config.jobs[0].at == ("noon", "evening")


# -- recipients, sender ----------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", ["friend:", "uuid:", "bob", "uuid:a b", "friend", "uuid:abc", "me:", "Me"])
def test_malformed_recipient(write_config, recipient):
    error = assert_refused(write_config, scrape_job(to=f'["me", "{recipient}"]'), "jobs[menu].to",
                           r'must be "me", "friend:NICKNAME" or "uuid:UUID"')
    assert repr(recipient) in error.reason


def test_empty_recipient_string(write_config):
    assert_refused(write_config, scrape_job(to='["me", ""]'), "jobs[menu].to", "non-empty strings")


def test_to_is_required(write_config):
    assert_refused(write_config, scrape_job(to=None), "jobs[menu].to", "at least one recipient")
    assert_refused(write_config, scrape_job(to="[]"), "jobs[menu].to", "at least one recipient")


def test_duplicates_in_to_are_collapsed_in_order(write_config):
    body = scrape_job(to='["me", "friend:홍길동", "me", "friend: 홍길동 ", "uuid:abcd-1234", "uuid:abcd-1234"]')
    job = load_config(write_config(body)).jobs[0]
    assert job.to == (Recipient("me"), Recipient("friend", "홍길동"), Recipient("uuid", "abcd-1234"))


def test_from_defaults_to_default_and_is_checked(write_config):
    assert load_config(write_config(scrape_job())).jobs[0].sender == "default"
    assert load_config(write_config(scrape_job('from = "shop2"'))).jobs[0].sender == "shop2"
    assert_refused(write_config, scrape_job('from = "my shop"'), "jobs[menu].from", "not a valid account name")
    assert_refused(write_config, scrape_job(f'from = "{"a" * 65}"'), "jobs[menu].from", "not a valid account name")


# -- kinds, names, templates, params ----------------------------------------------------------------


def test_unknown_kind(write_config):
    body = scrape_job().replace('kind = "scrape"', 'kind = "shopify-nothing"')
    error = assert_refused(write_config, body, "jobs[0].kind", "unknown kind 'shopify-nothing'")
    assert f"one of: {', '.join(known_kinds())}" in error.reason


def test_missing_kind(write_config):
    body = scrape_job().replace('kind = "scrape"\n', "")
    assert_refused(write_config, body, "jobs[0].kind", r"missing \(one of: scrape")


@pytest.mark.parametrize("name", [None, '""', '"my menu"', '"-menu"', f'"{"m" * 101}"'])
def test_missing_or_bad_job_name(write_config, name):
    assert_refused(write_config, scrape_job(name=name), "jobs[0].name", "required: up to 100 letters")


def test_job_name_of_100_characters_is_accepted(write_config):
    assert load_config(write_config(scrape_job(name=f'"{"m" * 100}"'))).jobs[0].name == "m" * 100


def test_duplicate_job_names(write_config):
    assert_refused(write_config, scrape_job() + scrape_job(at='["evening"]'), "jobs", "two jobs are named 'menu'")


def test_template_that_does_not_parse(write_config):
    error = assert_refused(write_config, scrape_job('template = "{% for item in items %}{{ item }"'),
                           "jobs[menu].template", "template does not parse: line 1")
    assert error.reason != "template does not parse: line 1: "


def test_template_with_unknown_filter(write_config):
    assert_refused(write_config, scrape_job('template = "{{ items|nosuchfilter }}"'),
                   "jobs[menu].template", "template does not parse")


def test_template_is_kept(write_config):
    job = load_config(write_config(scrape_job('template = "{{ count }} items"'))).jobs[0]
    assert job.template == "{{ count }} items"


def test_scrape_params_are_typed(write_config):
    body = scrape_job("only_if_changed = true", "max_items = 5", "timeout = 3")
    job = load_config(write_config(body)).jobs[0]
    assert job.kind == "scrape"
    assert job.params == ScrapeParams("https://example.com/menu", "ul.menu > li", True, 5, 3.0)


@pytest.mark.parametrize("key, value, reason", [
    ("url", '""', "required"),
    ("url", '"ftp://example.com/menu"', "http\\(s\\) URL"),
    ("url", '"https:///menu"', "http\\(s\\) URL with a host"),
    ("url", '"https://example.com:port/"', "bad port"),
    ("select", '"ul >> li"', "not a valid CSS selector"),
    ("select", '"li["', "not a valid CSS selector"),
    ("select", '""', "required"),
])
def test_bad_scrape_params(write_config, key, value, reason):
    body = re.sub(rf"^{key} = .*$", f"{key} = {value}", scrape_job(), count=1, flags=re.M)
    assert f"{key} = {value}" in body
    assert_refused(write_config, body, f"jobs[menu].{key}", reason)


def test_scrape_url_is_required(write_config):
    body = scrape_job().replace('url = "https://example.com/menu"\n', "")
    assert_refused(write_config, body, "jobs[menu].url", "required")


def test_scrape_select_is_required(write_config):
    body = scrape_job().replace('select = "ul.menu > li"\n', "")
    assert_refused(write_config, body, "jobs[menu].select", "required")


# -- server, URLs, database, shopify ------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["localhost", "8080", ":8080", "localhost:0", "localhost:65536",
                                    "http://127.0.0.1:8080", "127.0.0.1:80a", "127.0.0.1:8080/"])
def test_bad_listen(write_config, listen):
    error = assert_refused(write_config, f'[server]\nlisten = "{listen}"', "server.listen", "must be HOST:PORT")
    assert repr(listen) in error.reason


@pytest.mark.parametrize("listen, host, port", [("0.0.0.0:80", "0.0.0.0", 80), ("[::1]:9090", "::1", 9090),
                                                ("bot.internal:65535", "bot.internal", 65535)])
def test_listen(write_config, listen, host, port):
    server = load_config(write_config(f'[server]\nlisten = "{listen}"')).server
    assert (server.host, server.port) == (host, port)


@pytest.mark.parametrize("section, key, value", [
    ("server", "public_url", "bot.example.com"),
    ("server", "public_url", "ftp://bot.example.com"),
    ("server", "public_url", "https://"),
    ("server", "public_url", "http://["),
    ("kakao", "redirect_uri", "localhost:8080/kakao/callback"),
    ("kakao", "auth_url", "https://kauth.kakao.com:99999"),
    ("kakao", "api_url", "https://kapi.kakao.com:port"),
    ("kakao", "web_domain", "bot.example.com"),
])
def test_bad_url(write_config, section, key, value):
    error = assert_refused(write_config, f'[{section}]\n{key} = "{value}"', f"{section}.{key}", "must be an http\\(s\\) URL")
    assert repr(value) in error.reason


def test_urls_lose_a_trailing_slash_except_the_redirect_uri(write_config):
    config = load_config(write_config("""
        [server]
        public_url = "https://bot.example.com/"
        [kakao]
        redirect_uri = "http://127.0.0.1:8080/kakao/callback/"
        api_url = "http://127.0.0.1:9000/"
        timeout = 3
        """))
    assert config.server.public_url == "https://bot.example.com"
    assert config.kakao.redirect_uri == "http://127.0.0.1:8080/kakao/callback/"
    assert config.kakao.api_url == "http://127.0.0.1:9000"
    assert config.kakao.timeout == 3.0 and isinstance(config.kakao.timeout, float)


@pytest.mark.parametrize("url", ["mysql://bot@localhost/bot", "data/bot.sqlite3", "postgresql+psycopg2://h/db",
                                 "postgresql://bot@db.internal:abc/bot", "sqlite+aiosqlite:///x.db"])
def test_bad_database_url(write_config, url):
    error = refused(write_config, f'[database]\nurl = "{url}"')
    assert error.key == "database.url"
    assert "database URL" in error.reason or "URL" in error.reason


def test_database_url_with_a_password_is_not_echoed(write_config):
    error = refused(write_config, '[database]\nurl = "postgresql://bot:hunter2@db.internal:nope/bot"')
    assert error.key == "database.url"
    assert "hunter2" not in str(error)


@pytest.mark.parametrize("url", ["sqlite:///data/bot.sqlite3", "sqlite:////var/lib/bot/bot.sqlite3",
                                 "postgresql+psycopg://bot@db.internal:5432/bot", "postgresql://bot@db/bot"])
def test_database_url(write_config, url):
    assert load_config(write_config(f'[database]\nurl = "{url}"')).database.url == url


@pytest.mark.parametrize("version", ["2025-11", "latest", "2025-1", "25-10", ""])
def test_bad_shopify_api_version(write_config, version):
    assert_refused(write_config, f'[shopify]\napi_version = "{version}"', "shopify.api_version", "quarterly version")


@pytest.mark.parametrize("version", ["2025-01", "2024-07", "unstable"])
def test_shopify_api_version(write_config, version):
    assert load_config(write_config(f'[shopify]\napi_version = "{version}"')).shopify.api_version == version


@pytest.mark.parametrize("origin", ["https://shop.example.com", "{shop}.myshopify.com", "ftp://{shop}"])
def test_bad_shopify_origin(write_config, origin):
    assert_refused(write_config, f'[shopify]\norigin = "{origin}"', "shopify.origin", "containing \\{shop\\}")


def test_shopify_apps(write_config):
    shopify = load_config(write_config("""
        [shopify]
        origin = "http://127.0.0.1:9001/{shop}/"
        [[shopify.apps]]
        name = "default"
        [[shopify.apps]]
        name = "wholesale"
        api_key_env = "WHOLESALE_API_KEY"
        api_secret_env = "WHOLESALE_API_SECRET"
        old_api_secret_env = "WHOLESALE_API_SECRET_OLD"
        scopes = ["read_orders", "read_products"]
        """)).shopify
    assert shopify.origin == "http://127.0.0.1:9001/{shop}"
    assert [app.name for app in shopify.apps] == ["default", "wholesale"]
    default, wholesale = shopify.apps
    assert (default.api_key_env, default.api_secret_env, default.old_api_secret_env, default.scopes) == (
        "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", None, ("read_orders",))
    assert (wholesale.api_key_env, wholesale.api_secret_env, wholesale.old_api_secret_env, wholesale.scopes) == (
        "WHOLESALE_API_KEY", "WHOLESALE_API_SECRET", "WHOLESALE_API_SECRET_OLD", ("read_orders", "read_products"))


def test_duplicate_app_names(write_config):
    assert_refused(write_config, '[[shopify.apps]]\nname = "a"\n[[shopify.apps]]\nname = "b"\n[[shopify.apps]]\nname = "a"',
                   "shopify.apps", "two apps are named 'a'")


@pytest.mark.parametrize("key", ["api_key_env", "api_secret_env", "old_api_secret_env"])
def test_app_env_names_must_name_a_variable(write_config, key):
    assert_refused(write_config, f'[[shopify.apps]]\n{key} = "shopify-key"', f"shopify.apps[0].{key}",
                   "must name an environment variable")


def test_bad_app_name(write_config):
    assert_refused(write_config, '[[shopify.apps]]\nname = "my app"', "shopify.apps[0].name", "letters, digits")


# -- the file -------------------------------------------------------------------------------------------


def test_invalid_toml(write_config):
    error = assert_refused(write_config, 'timezone = "Asia/Seoul"\n[server\n', "(file)", "^not valid TOML: ")
    assert "line 2" in error.reason


def test_duplicate_toml_key_is_invalid_toml(write_config):
    assert_refused(write_config, 'timezone = "UTC"\ntimezone = "UTC"\n', "(file)", "^not valid TOML")


def test_not_utf8(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes('timezone = "서울"'.encode("euc-kr"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.file) == ("(file)", str(path))
    assert "UTF-8" in info.value.reason


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes('\ufefftimezone = "UTC"\n'.encode("utf-8"))
    assert str(load_config(path).timezone) == "UTC"


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert (info.value.key, info.value.file) == ("(file)", str(tmp_path))
    assert "cannot be read" in info.value.reason


@pytest.mark.parametrize("body", [None, ""])
def test_defaults_when_the_file_is_missing_or_empty(tmp_path, body):
    path = tmp_path / "config.toml"
    if body is not None:
        path.write_text(body, encoding="utf-8")
    config = load_config(path)
    assert config.path == path and config.base_dir == tmp_path
    assert str(config.timezone) == "Asia/Seoul"
    assert config.database.url == "sqlite:///data/bot.sqlite3"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.server.public_url == "https://bot.example.com"
    assert config.kakao.redirect_uri == "http://localhost:8080/kakao/callback"
    assert (config.kakao.auth_url, config.kakao.api_url) == ("https://kauth.kakao.com", "https://kapi.kakao.com")
    assert config.kakao.timeout == 10.0
    assert (config.shopify.api_version, config.shopify.origin) == ("2026-07", "https://{shop}")
    assert [(app.name, app.api_key_env, app.api_secret_env, app.scopes) for app in config.shopify.apps] == [
        ("default", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", ("read_orders",))]
    assert config.slots == {"morning": time(8), "noon": time(12), "evening": time(18)}
    assert config.grace_seconds == 1800
    assert config.jobs == () and config.warnings == ()


def test_a_required_file_that_is_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml", require_file=True)
    assert info.value.key == "(file)" and "config.example.toml" in info.value.reason


# -- config.example.toml ------------------------------------------------------------------------------

EXAMPLE = REPO / "config.example.toml"


def test_the_example_config_loads_without_warnings():
    config = load_config(EXAMPLE, require_file=True)
    assert config.warnings == ()
    assert [job.name for job in config.jobs] == ["menu", "orders", "new-orders", "refunds", "low-stock",
                                                 "risky-orders", "late-orders"]
    assert config.jobs[0].params.url == "https://example.com/menu"
    assert config.jobs[1].kind == "shopify-orders"
    assert config.jobs[1].params.shop == "my-store.myshopify.com"
    assert config.jobs[2].kind == "shopify-order-alert" and config.jobs[2].at == ()
    assert config.jobs[2].params.shop == "my-store.myshopify.com"


def _example_keys() -> set[str]:
    """Every `key =` in the example, commented out or not."""
    return set(re.findall(r"^#?\s*([a-z_]+)\s*=", EXAMPLE.read_text(encoding="utf-8"), flags=re.M))


def test_the_example_shows_every_key_the_parser_accepts():
    section_keys = set().union(*config_module.SECTION_KEYS.values()) - {"apps"} | {"morning", "noon", "evening"}
    expected = (config_module._TOP_KEYS - {"database", "server", "kakao", "shopify", "webhooks", "slots", "delivery",
                                           "jobs"}
                | section_keys | config_module._JOB_KEYS | set().union(*(job_kind(k).PARAM_KEYS for k in known_kinds())))
    assert expected - _example_keys() == set()
    text = EXAMPLE.read_text(encoding="utf-8")
    for table in ("[database]", "[server]", "[kakao]", "[shopify]", "[[shopify.apps]]", "[webhooks]", "[slots]",
                  "[delivery]", "[[jobs]]"):
        assert f"\n{table}\n" in text


def test_the_example_names_every_secret_and_only_existing_kinds_uncommented():
    text = EXAMPLE.read_text(encoding="utf-8")
    for variable in ("BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "KAKAO_CLIENT_SECRET", "SHOPIFY_API_KEY",
                     "SHOPIFY_API_SECRET", "BOT_DATABASE_URL", "CREDENTIALS_DIRECTORY", ".env"):
        assert variable in text
    live_kinds = re.findall(r'^kind\s*=\s*"([^"]+)"', text, flags=re.M)
    assert live_kinds and set(live_kinds) <= set(known_kinds())
    assert set(known_kinds()) <= set(live_kinds)  # every implemented kind has a live example
    commented = set(re.findall(r'^#\s*kind\s*=\s*"([^"]+)"', text, flags=re.M))
    assert commented <= set(known_kinds())


# -- quota plan warnings -----------------------------------------------------------------------------


def test_cron_every_ten_minutes_to_a_friend_warns_about_the_pair(write_config):
    config = load_config(write_config(scrape_job(at='["*/10 * * * *"]', to='["friend:홍길동"]')))
    assert "'default' → friend:홍길동: 144 messages a day; Kakao allows 20 per pair" in config.warnings
    assert "friend:홍길동 would receive 144 messages a day; Kakao allows 100" in config.warnings
    assert any(w.startswith("jobs sent by 'default' plan 144 messages a day") for w in config.warnings)


def test_three_slots_to_forty_friends_warns_about_the_sender(write_config):
    friends = ", ".join(f'"friend:직원{i}"' for i in range(40))
    config = load_config(write_config(scrape_job(at='["morning", "noon", "evening"]', to=f"[{friends}]")))
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith("jobs sent by 'default' plan 120 messages a day; Kakao allows 100 per sender")


def test_a_modest_config_has_no_warning(write_config):
    friends = ", ".join(f'"friend:직원{i}"' for i in range(5))
    body = (scrape_job(at='["morning", "noon", "evening", "0 21 * * mon-fri"]', to=f'["me", {friends}]')
            + scrape_job(name='"menu2"', at='["*/30 9-17 * * sat"]', to='["me"]'))
    assert load_config(write_config(body)).warnings == ()


def test_senders_are_counted_apart(write_config):
    friends = ", ".join(f'"friend:직원{i}"' for i in range(20))
    body = (scrape_job(at='["morning", "noon", "evening"]', to=f"[{friends}]")
            + scrape_job('from = "shop2"', name='"menu2"', at='["morning", "noon", "evening"]', to=f"[{friends}]"))
    # 60 a day per sender; each friend gets 6 a day.
    assert load_config(write_config(body)).warnings == ()
    body = body.replace('from = "shop2"\n', "")
    warnings = load_config(write_config(body)).warnings
    assert len(warnings) == 1 and "plan 120 messages a day" in warnings[0]


def test_a_cron_of_rare_days_is_warned_about_whatever_the_date(write_config):
    # Fires every 10 minutes on 29 February only: never in the coming week, still too many that day.
    config = load_config(write_config(scrape_job(at='["*/10 * 29 2 *"]', to='["friend:홍길동"]')))
    assert "'default' → friend:홍길동: 144 messages a day; Kakao allows 20 per pair" in config.warnings


def test_slots_and_crons_add_up(write_config):
    # 3 slots + 18 cron fires (every 10 minutes 9:00–11:50 on weekdays) = 21 > 20 a pair.
    config = load_config(write_config(scrape_job(at='["morning", "noon", "evening", "*/10 9-11 * * mon-fri"]',
                                                 to='["friend:홍길동"]')))
    assert config.warnings == ("'default' → friend:홍길동: 21 messages a day; Kakao allows 20 per pair",)


# -- through the command line -------------------------------------------------------------------------

SECRET_VALUES = {"BOT_SECRET_KEY": "not-a-real-fernet-key-but-secret-0001",
                 "KAKAO_REST_API_KEY": "rest-key-secret-0002",
                 "KAKAO_CLIENT_SECRET": "client-secret-0003"}


@pytest.mark.parametrize("body, key, reason", [
    (scrape_job(to='["me", "bob"]'), "jobs[menu].to", "recipient 'bob' must be"),
    ('timezone = "Mars/Olympus"', "timezone", "unknown time zone"),
    ("[server\n", "(file)", "not valid TOML"),
    (scrape_job(at='["0 8 * * 1-5"]'), "jobs[menu].at", "weekdays as names"),
])
def test_cli_bad_config_exits_2_naming_file_key_and_reason(write_config, monkeypatch, body, key, reason):
    path = write_config(body)
    (path.parent / ".env").write_text("SHOPIFY_API_SECRET=dotenv-secret-0004\n", encoding="utf-8")
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["--config", str(path), "send-now", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and key in result.output and reason in result.output
    for value in [*SECRET_VALUES.values(), "dotenv-secret-0004"]:
        assert value not in result.output
    assert "Traceback" not in result.output
    assert not (path.parent / "data").exists()  # refused before any database was opened


def test_cli_uses_bot_config_when_no_option_is_given(write_config, monkeypatch):
    path = write_config('colour = "red"')
    monkeypatch.setenv("BOT_CONFIG", str(path))
    result = CliRunner().invoke(cli, ["send-now", "--dry-run"])
    assert result.exit_code == 2
    assert f"{path}: colour: unknown key" in result.output


def test_a_named_config_file_that_does_not_exist_is_refused_not_replaced_by_defaults(tmp_path):
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "typo.toml"), "send-now", "--dry-run"])
    assert result.exit_code == 2
    assert "typo.toml" in result.output and "not found" in result.output
    assert not (tmp_path / "data").exists()
