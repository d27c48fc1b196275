// The embedded app's page: every call to the bot carries App Bridge's session token (shopify.idToken()),
// and the bot answers only for that token's shop (bot/web/embedded_api.py).
"use strict";

const API = document.body.dataset.api;
const STATUS_TEXT = {sent: "보냄", failed: "실패", unknown: "확인 안 됨", skipped: "건너뜀",
                     "already-sent": "이미 보냄", claimed: "보내는 중", sending: "보내는 중"};
const JOB_TEXT = {"test-message": "테스트 메시지", digest: "주문 요약", "new-orders": "새 주문 알림"};
const POLL_MS = 2000;
const POLL_LIMIT = 150;  // five minutes of waiting for the Kakao login window
let settingsVersion = 0;
let settings = {recipients: ["me"], digest: null, new_orders: null};

async function api(method, path, body) {
  const token = await shopify.idToken();
  const headers = {"Authorization": "Bearer " + token};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.message) || ("HTTP " + response.status));
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

function byId(id) { return document.getElementById(id); }
function say(text) { byId("status").textContent = text; }
function problem(text) {
  byId("problem").hidden = !text;
  byId("problem-text").textContent = text || "";
}

// -- KakaoTalk -------------------------------------------------------------------------------------
async function loadKakao() {
  const kakao = await api("GET", "/kakao");
  const words = {connected: "연결됨", needs_login: "다시 연결해야 합니다", not_connected: "연결 안 됨"};
  byId("kakao-state").textContent = words[kakao.state] || kakao.state;
  byId("kakao-connect").textContent = kakao.state === "not_connected" ? "카카오톡 연결" : "다시 연결";
  problem(kakao.problem);
  if (kakao.state === "connected") await loadFriends();
  return kakao.state;
}

async function connectKakao() {
  const started = await api("POST", "/kakao/connect");
  // OAuth cannot run inside the admin's iframe: Kakao's page opens as a top-level window.
  window.open(started.authorize_url, "kakao-login", "width=480,height=720");
  say("카카오 로그인 창에서 로그인과 동의를 마쳐 주세요…");
  for (let tries = 0; tries < POLL_LIMIT; tries++) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (await loadKakao() === "connected") { say("카카오톡이 연결되었습니다."); return; }
  }
  say("카카오 로그인이 끝나지 않았습니다. 다시 시도해 주세요.");
}

async function loadFriends() {
  const answer = await api("GET", "/kakao/friends");
  const box = byId("recipients");
  box.replaceChildren();
  for (const person of answer.recipients) {
    const label = document.createElement("label");
    label.className = "choice";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "recipient";
    input.value = person.key;
    input.checked = settings.recipients.includes(person.key);
    input.disabled = !person.allowed;
    label.append(input, " " + person.label + (person.allowed ? "" : " (메시지 수신 거부)"));
    box.append(label);
  }
  byId("friends-note").textContent = answer.note;
}

// -- settings ----------------------------------------------------------------------------------------
function fillForm() {
  const times = settings.digest ? settings.digest.at : [];
  for (const box of document.querySelectorAll("input[name=digest-at]")) box.checked = times.includes(box.value);
  for (const box of document.querySelectorAll("input[name=recipient]")) box.checked = settings.recipients.includes(box.value);
  const alerts = settings.new_orders;
  byId("alerts-on").checked = alerts !== null;
  byId("min-total").value = alerts && alerts.min_total !== undefined ? alerts.min_total : "";
  byId("on-update").checked = !alerts || alerts.on_update !== false;
  const quiet = alerts && alerts.quiet ? alerts.quiet.split("-") : ["", ""];
  byId("quiet-start").value = quiet[0];
  byId("quiet-end").value = quiet[1];
  for (const box of document.querySelectorAll("input[name=alert-kind]")) box.checked = Boolean(settings[box.value]);
}

function readForm() {
  const checked = (selector) => [...document.querySelectorAll(selector)].filter((box) => box.checked).map((box) => box.value);
  const recipients = checked("input[name=recipient]");
  const times = checked("input[name=digest-at]");
  let alerts = null;
  if (byId("alerts-on").checked) {
    alerts = {on_update: byId("on-update").checked};
    if (byId("min-total").value !== "") alerts.min_total = Number(byId("min-total").value);
    if (byId("quiet-start").value && byId("quiet-end").value) {
      alerts.quiet = byId("quiet-start").value + "-" + byId("quiet-end").value;
    }
  }
  const document_ = {recipients: recipients.length ? recipients : ["me"], digest: times.length ? {at: times} : null,
                     new_orders: alerts};
  // The other alert kinds: on with the options already saved (the kind's defaults for a new one), or off.
  for (const box of document.querySelectorAll("input[name=alert-kind]")) {
    document_[box.value] = box.checked ? (settings[box.value] || {}) : null;
  }
  return document_;
}

async function loadSettings() {
  const answer = await api("GET", "/settings");
  settingsVersion = answer.version;
  settings = answer.settings;
  fillForm();
}

async function save() {
  try {
    const answer = await api("PUT", "/settings", {version: settingsVersion, settings: readForm()});
    settingsVersion = answer.version;
    settings = answer.settings;
    say(answer.webhooks_error ? "저장했습니다. (Shopify 알림 연결은 나중에 다시 시도합니다)" : "저장했습니다.");
  } catch (error) {
    if (error.status === 409) await loadSettings();
    say(error.message);
  }
}

// -- test message and history ---------------------------------------------------------------------------
async function sendTest() {
  const list = byId("test-results");
  list.replaceChildren();
  try {
    const answer = await api("POST", "/kakao/test", {recipients: readForm().recipients});
    for (const result of answer.results) {
      const item = document.createElement("li");
      item.textContent = result.label + ": " + (STATUS_TEXT[result.status] || result.status)
        + (result.reason ? " — " + result.reason : "");
      list.append(item);
    }
    say("테스트 메시지를 보냈습니다.");
    await loadHistory();
  } catch (error) {
    say(error.message);
  }
}

function jobText(job) {
  const kind = job.includes(":") ? job.slice(job.lastIndexOf(":") + 1) : job;
  return JOB_TEXT[kind] || kind;
}

async function loadHistory() {
  const answer = await api("GET", "/history?limit=20");
  const body = byId("history").tBodies[0];
  if (!answer.deliveries.length) return;
  body.replaceChildren();
  for (const row of answer.deliveries) {
    const line = body.insertRow();
    const when = new Date(row.at).toLocaleString("ko-KR", {timeZone: "Asia/Seoul"});
    for (const text of [when, jobText(row.job), row.recipient === "me" ? "나" : row.recipient,
                        (STATUS_TEXT[row.status] || row.status) + (row.reason ? " — " + row.reason : "")]) {
      line.insertCell().textContent = text;
    }
  }
}

// -- start ---------------------------------------------------------------------------------------------
async function start() {
  byId("kakao-connect").addEventListener("click", () => connectKakao().catch((error) => say(error.message)));
  byId("save").addEventListener("click", save);
  byId("send-test").addEventListener("click", sendTest);
  try {
    await api("GET", "/shop");  // installs the shop by token exchange on the first visit
    await loadSettings();
    await loadKakao();
    await loadHistory();
    document.body.dataset.ready = "1";
  } catch (error) {
    problem(error.message);
  }
}

start();
