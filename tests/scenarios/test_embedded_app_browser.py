"""The embedded app in a real browser: Debian's Chromium (headless, through its ChromeDriver) opens the Shopify
stand-in's admin, which frames the bot's app URL exactly as the admin does; the page loads the stand-ins of App
Bridge and Polaris, installs the shop by token exchange, connects KakaoTalk through Kakao's login in a new
window (the Kakao stand-in), picks two friends and the evening slot, saves, sends a test message (the Kakao
stand-in receives it) and shows it in its history. Uninstalling, then opening the app again, starts empty.
Screenshots of each section are taken every run; with BOT_UPDATE_SCREENSHOTS=1 they replace those in
docs/app-home/ (the README shows them), otherwise they go to the test's temporary folder, so that a test run
leaves the checkout as it was (the history shows the time of the run)."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from bot.app import App, load_config
from bot.config.secrets import Secrets
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.shopify import ShopifySandbox
from bot.store.merchant_settings import merchant_account
from bot.util.retry import RetryPolicy
from bot.web.server import create_app
from bot.webhooks.worker import WebhookWorker

from webhook_helpers import CLIENT_SECRET, REST_KEY

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOP, KEY, SECRET = "kimchi-shop.myshopify.com", "embedded-client-id", "embedded-secret-0123456789abcdef01"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "app-home"
UPDATE_SCREENSHOTS = os.environ.get("BOT_UPDATE_SCREENSHOTS") == "1"
CHROMEDRIVER, CHROMIUM = shutil.which("chromedriver"), shutil.which("chromium")
WAIT = 20  # seconds any one step may take in the browser


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMEDRIVER and CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI runs the browser tests: install chromium and chromium-driver (.ci/run does)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1500",
                 "--lang=ko-KR", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def deployment(tmp_path, secret_key, clock, sandbox: KakaoSandbox, kakao_server: RunningServer
               ) -> Iterator[tuple[App, ShopifySandbox, RunningServer, RunningServer]]:
    shopify = ShopifySandbox()  # the browser's clock is the real one: so are the session tokens'
    shopify.register_app(KEY, SECRET)
    shopify.add_shop(SHOP, name="김치 상회")
    target: dict[str, Callable] = {}
    with serve(shopify.wsgi_app()) as admin, serve(lambda env, start: target["app"](env, start)) as bot_server:
        (tmp_path / "config.toml").write_text(textwrap.dedent(f"""\
            [database]
            url = "sqlite:///{tmp_path / 'bot.sqlite3'}"
            [server]
            public_url = "{bot_server.url}"
            [kakao]
            redirect_uri = "{bot_server.url}/kakao/callback"
            auth_url = "{kakao_server.url}"
            api_url = "{kakao_server.url}"
            web_domain = "{bot_server.url}"
            [shopify]
            origin = "{admin.url}/{{shop}}"
            cdn = "{admin.url}/cdn"
            """), encoding="utf-8")
        secrets = Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
                           "KAKAO_CLIENT_SECRET": CLIENT_SECRET, "SHOPIFY_API_KEY": KEY, "SHOPIFY_API_SECRET": SECRET})
        app = App(load_config(tmp_path / "config.toml"), secrets,
                  retry=RetryPolicy(attempts=2, base_delay=0, sleep=lambda _s: None))
        app.db.migrate()
        target["app"] = create_app(app)
        yield app, shopify, admin, bot_server
        app.close()


def open_app(driver: Any, admin: RunningServer, bot_server: RunningServer) -> None:
    driver.get(f"{admin.url}/admin/store/{SHOP}/apps/{KEY}?app_url={bot_server.url}/shopify/default")
    driver.switch_to.frame("app-iframe")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
                                      or d.find_element(By.ID, "problem-text").text)
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", \
        driver.find_element(By.ID, "problem-text").text


def text_of(driver: Any, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def shoot(driver: Any, element_id: str, name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.find_element(By.ID, element_id).screenshot(str(path)) and path.stat().st_size > 1000


def test_a_merchant_sets_up_kakaotalk_news_inside_the_admin(browser, deployment, sandbox: KakaoSandbox, tmp_path):
    app, shopify, admin, bot_server = deployment
    pictures = DOCS if UPDATE_SCREENSHOTS else tmp_path / "app-home"
    hong, kim = sandbox.add_friend("홍길동", uuid="uuid-hong"), sandbox.add_friend("김영희", uuid="uuid-kim")
    sandbox.add_friend("박철수", uuid="uuid-park")

    open_app(browser, admin, bot_server)  # installs by token exchange
    assert app.shopify_tokens.status(SHOP, "default").active
    assert text_of(browser, "kakao-state") == "연결 안 됨"
    shoot(browser, "kakao-section", "1-kakao-not-connected", pictures)

    app_window = browser.current_window_handle
    browser.find_element(By.ID, "kakao-connect").click()
    WebDriverWait(browser, WAIT).until(lambda d: len(d.window_handles) == 2)
    popup = next(handle for handle in browser.window_handles if handle != app_window)
    browser.switch_to.window(popup)
    WebDriverWait(browser, WAIT).until(lambda d: "카카오톡이 연결되었습니다" in d.page_source)
    browser.close()
    browser.switch_to.window(app_window)
    browser.switch_to.frame("app-iframe")
    WebDriverWait(browser, WAIT).until(lambda d: text_of(d, "kakao-state") == "연결됨")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"input[value='uuid:{kim}']"))
    shoot(browser, "kakao-section", "2-kakao-connected", pictures)

    for key in (f"uuid:{hong}", f"uuid:{kim}"):
        browser.find_element(By.CSS_SELECTOR, f"input[name=recipient][value='{key}']").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=digest-at][value='18:00']").click()
    browser.find_element(By.ID, "alerts-on").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=alert-kind][value=refunds]").click()
    shoot(browser, "recipients-section", "3-recipients", pictures)
    shoot(browser, "schedule-section", "4-schedule", pictures)
    shoot(browser, "alerts-section", "5-alerts", pictures)
    browser.find_element(By.ID, "save").click()
    WebDriverWait(browser, WAIT).until(lambda d: text_of(d, "status").startswith("저장했습니다"))
    stored = app.merchant_settings.get("default", SHOP)
    assert sorted(stored.document["recipients"]) == ["me", f"uuid:{hong}", f"uuid:{kim}"]
    assert stored.document["digest"] == {"at": ["18:00"]} and stored.document["new_orders"] == {"on_update": True}
    assert stored.document["refunds"] == {} and stored.document["low_stock"] is None

    browser.find_element(By.ID, "send-test").click()
    WebDriverWait(browser, WAIT).until(lambda d: text_of(d, "status") == "테스트 메시지를 보냈습니다.")
    assert [len(sandbox.received(key)) for key in ("me", hong, kim, "uuid-park")] == [1, 1, 1, 0]
    assert sandbox.received(hong)[0]["text"].startswith("[테스트]")
    WebDriverWait(browser, WAIT).until(lambda d: "테스트 메시지" in text_of(d, "history"))
    assert "홍길동" in text_of(browser, "history") and "보냄" in text_of(browser, "history")
    shoot(browser, "history-section", "6-history", pictures)

    shopify.uninstall(SHOP, KEY, webhook_url=f"{bot_server.url}/shopify/default/webhooks")
    assert WebhookWorker(app).drain_once() == 1
    open_app(browser, admin, bot_server)  # a re-install: token exchange again, and nothing of before
    assert app.shopify_tokens.status(SHOP, "default").active
    assert text_of(browser, "kakao-state") == "연결 안 됨"
    assert not browser.find_element(By.CSS_SELECTOR, "input[name=digest-at][value='18:00']").is_selected()
    assert app.merchant_settings.get("default", SHOP) is None
    assert app.kakao_tokens.status(merchant_account("default", SHOP)) is None
