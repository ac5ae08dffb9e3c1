// The practice's web chat with the bot (issue 18): a real Matrix client of the practice's homeserver, with
// Element's crypto stack (matrix-js-sdk + its Rust crypto in wasm), for a patient who has no app and no
// account. The link's fragment carries a single-use token (#t=...); the bot's API (web/README.md) turns it
// into a registration token for a throwaway account. The session (access token, IndexedDB crypto store)
// survives a reload until the bot says the chat is closed; then every byte the page stored is wiped.
import { sanitise } from "./sanitise.js";
import { encryptAttachment, imageType } from "./attachment.js";

// Node 20 era engines and some older phone browsers lack Promise.withResolvers, which the SDK uses.
if (!Promise.withResolvers) {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
}

const SESSION_KEY = "gpphotobot.session";
const CHOICES_KEY = "uk.co.gpphotobot.choices";
const STATUS_EVERY_MS = 20000;

const $ = (id) => document.getElementById(id);
let config = { practice_name: "", contact: "" };
let client = null;
let sdk = null;
let roomId = null;
let botUserId = null;
const shown = new Map(); // event id -> its <li>
let linkToken = null;

// ---- screens ----------------------------------------------------------------------------------------

function showScreen(name) {
  for (const id of ["screen-loading", "screen-poster", "screen-message", "screen-chat"]) {
    $(id).hidden = id !== `screen-${name}`;
  }
}

function loading(text) {
  $("loading-step").textContent = text;
}

function showMessage(title, text) {
  $("message-title").textContent = title;
  $("message-text").textContent = text;
  $("message-contact").textContent = config.contact || "";
  showScreen("message");
  $("message-title").focus();
}

const REFUSED = {
  used: ["This link has already been used", "Each link works on one phone only."],
  expired: ["This link has expired", "Links only work for a short time."],
  closed: ["This chat has ended", "Your practice has closed this chat. Nothing from it is kept on this phone."],
  unknown: ["This link does not work", "It may have been copied wrongly."],
  busy: ["Please try again later", "Too many chats were started from here today."],
};

function refuse(reason) {
  const [title, text] = REFUSED[reason] ?? REFUSED.unknown;
  showMessage(title, text);
}

// ---- the bot's API ----------------------------------------------------------------------------------

async function api(path, body) {
  const response = await fetch(`api/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  let json = {};
  try {
    json = await response.json();
  } catch {
    json = {};
  }
  return { status: response.status, json };
}

// ---- storage ----------------------------------------------------------------------------------------

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null");
  } catch {
    return null;
  }
}

function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function deleteDatabase(name) {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

/** Everything this page stored, gone: the client, its crypto store, local and session storage. */
async function wipe() {
  if (client) {
    try {
      client.stopClient();
      await client.clearStores();
    } catch {
      // already stopped or never started: the databases are deleted below anyway
    }
    client = null;
  }
  localStorage.clear();
  sessionStorage.clear();
  if (indexedDB.databases) {
    for (const db of await indexedDB.databases()) if (db.name) await deleteDatabase(db.name);
  }
}

// ---- registration -----------------------------------------------------------------------------------

function randomSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, "");
}

/** Register `username` with a Synapse registration token (m.login.registration_token, user-interactive). */
async function register(homeserverUrl, username, password, registrationToken) {
  const url = `${homeserverUrl.replace(/\/$/, "")}/_matrix/client/v3/register`;
  const body = { username, password, initial_device_display_name: "Practice web chat", inhibit_login: false };
  for (let round = 0; round < 5; round += 1) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    const json = await response.json();
    if (response.ok) return json;
    if (response.status !== 401 || !json.flows) throw new Error(`registration refused: ${json.errcode}`);
    const flow = json.flows.find((f) => f.stages.includes("m.login.registration_token")) ?? json.flows[0];
    const done = new Set(json.completed ?? []);
    const next = flow.stages.find((stage) => !done.has(stage));
    if (next === "m.login.registration_token") {
      body.auth = { type: next, token: registrationToken, session: json.session };
    } else if (next === "m.login.dummy") {
      body.auth = { type: next, session: json.session };
    } else {
      throw new Error(`registration needs a step this page cannot do: ${next}`);
    }
  }
  throw new Error("registration did not finish");
}

// ---- the Matrix client ------------------------------------------------------------------------------

async function startClient(session) {
  sdk = await import("matrix-js-sdk");
  const { logger } = await import("matrix-js-sdk/lib/logger.js");
  logger.setLevel?.("warn");
  client = sdk.createClient({
    baseUrl: session.homeserverUrl,
    userId: session.userId,
    deviceId: session.deviceId,
    accessToken: session.accessToken,
  });
  loading("Setting up encryption on this phone");
  await client.initRustCrypto({ useIndexedDB: true });
  if (!session.crossSigned) {
    // Cross-signing, so that the bot's trust policy and "exclude insecure devices" clients accept this
    // device. The password only exists for this step (user-interactive auth), then leaves storage.
    await client.getCrypto().bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest({
          type: "m.login.password",
          identifier: { type: "m.id.user", user: session.userId },
          password: session.password,
        });
      },
    });
    session.crossSigned = true;
    delete session.password;
    saveSession(session);
  }
  botUserId = session.botUserId;
  client.on(sdk.RoomEvent.Timeline, (event, room) => onTimeline(event, room));
  client.on(sdk.MatrixEventEvent.Decrypted, (event) => {
    if (event.getRoomId() === roomId) render();
  });
  client.on(sdk.RoomMemberEvent.Membership, (event, member) => {
    if (member.userId === session.userId && member.membership === "invite") acceptInvite(member.roomId);
  });
  // The bot deactivates the account when the practice closes the chat: the homeserver then refuses the
  // access token, and the page asks the bot at once (and wipes everything) instead of waiting for its poll.
  client.on(sdk.HttpApiEvent.SessionLoggedOut, async () => {
    if (linkToken && (await checkStatus(linkToken))) {
      showMessage("Something went wrong", "The chat could not be reached. Please try the link again later.");
    }
  });
  const synced = new Promise((resolve) => {
    const onSync = (state) => {
      if (state === "PREPARED" || state === "SYNCING") {
        client.off(sdk.ClientEvent.Sync, onSync);
        resolve();
      }
    };
    client.on(sdk.ClientEvent.Sync, onSync);
  });
  await client.startClient({ initialSyncLimit: 100, lazyLoadMembers: true });
  await synced;
  return session;
}

async function acceptInvite(invitedRoomId) {
  const room = client.getRoom(invitedRoomId);
  const inviter = room?.getMember(client.getUserId())?.events?.member?.getSender();
  if (inviter && inviter !== botUserId) return; // only the practice's bot may open a chat with this account
  await client.joinRoom(invitedRoomId);
  chooseRoom();
}

function chooseRoom() {
  if (roomId) return;
  const room = client
    .getRooms()
    .find((r) => r.getMyMembership() === "join" && r.getMember(botUserId)?.membership === "join");
  if (!room) {
    for (const r of client.getRooms()) if (r.getMyMembership() === "invite") acceptInvite(r.roomId);
    return;
  }
  roomId = room.roomId;
  showScreen("chat");
  render();
}

function onTimeline(event, room) {
  if (!room) return;
  if (!roomId) chooseRoom();
  if (room.roomId === roomId) render();
}

// ---- the chat ---------------------------------------------------------------------------------------

function contentOf(event) {
  return event.replacingEvent()?.getContent()?.["m.new_content"] ?? event.getContent();
}

function fillMessage(li, event) {
  const mine = event.getSender() === client.getUserId();
  const content = contentOf(event);
  li.className = mine ? "me" : "bot";
  li.replaceChildren();
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = mine ? "You" : config.practice_name || "Your practice";
  li.appendChild(who);
  const text = document.createElement("div");
  text.className = "text";
  if (event.isDecryptionFailure()) {
    text.textContent = "This message could not be opened on this phone.";
  } else if (content.msgtype === "m.image") {
    text.textContent = `Photo sent: ${content.body ?? "photo"}`;
  } else if (!mine && content.format === "org.matrix.custom.html" && typeof content.formatted_body === "string") {
    text.appendChild(sanitise(content.formatted_body));
  } else {
    text.textContent = String(content.body ?? "");
  }
  li.appendChild(text);
}

function render() {
  const room = client.getRoom(roomId);
  if (!room) return;
  const list = $("messages");
  let lastBotMessage = null;
  for (const event of room.getLiveTimeline().getEvents()) {
    const id = event.getId();
    if (!id || !id.startsWith("$")) continue; // a local echo: shown once the server has it
    if (event.isRelation("m.replace")) continue; // shown through the event it edits
    if (event.isBeingDecrypted()) continue; // shown once decrypted (the Decrypted event renders again)
    if (event.getType() !== "m.room.message" && !event.isDecryptionFailure()) continue;
    let li = shown.get(id);
    if (!li) {
      li = document.createElement("li");
      shown.set(id, li);
      list.appendChild(li);
    }
    fillMessage(li, event);
    if (event.getSender() === botUserId) lastBotMessage = event;
    else if (event.getType() === "m.room.message") lastBotMessage = null;
  }
  showChoices(lastBotMessage);
  if (list.lastElementChild) list.lastElementChild.scrollIntoView({ block: "end" });
}

function showChoices(event) {
  const box = $("choices");
  const choices = event ? contentOf(event)[CHOICES_KEY] ?? event.getContent()[CHOICES_KEY] : null;
  const key = event && Array.isArray(choices) ? event.getId() : "";
  if (box.dataset.for === key) return;
  box.dataset.for = key;
  box.replaceChildren();
  box.hidden = !key;
  if (!key) return;
  for (const choice of choices) {
    if (typeof choice?.label !== "string" || typeof choice?.answer !== "string") continue;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = choice.label;
    button.addEventListener("click", () => {
      $("message-input").focus(); // the buttons go once answered: focus stays somewhere useful
      sendText(choice.answer);
    });
    box.appendChild(button);
  }
}

function notice(text) {
  $("notice").textContent = text;
}

/** The room's encryption, checked before anything leaves the page: nothing is ever sent in the clear. */
async function encryptedRoom() {
  if (!roomId || !(await client.getCrypto().isEncryptionEnabledInRoom(roomId))) {
    notice("This chat is not encrypted, so nothing was sent. Please contact your practice.");
    return false;
  }
  return true;
}

async function sendText(text) {
  const trimmed = text.trim();
  if (!trimmed || !(await encryptedRoom())) return;
  $("choices").hidden = true;
  try {
    await client.sendMessage(roomId, { msgtype: "m.text", body: trimmed });
    notice("");
  } catch {
    notice("Your message was not sent. Please check your connection and try again.");
  }
}

async function sendPhotos(files) {
  if (!files.length || !(await encryptedRoom())) return;
  const box = $("upload");
  const bar = $("upload-progress");
  box.hidden = false;
  let sent = 0;
  for (const [index, file] of files.entries()) {
    $("upload-label").textContent = `Sending photo ${index + 1} of ${files.length}`;
    bar.value = 0;
    try {
      const { data, info } = await encryptAttachment(await file.arrayBuffer());
      const upload = await client.uploadContent(new Blob([data], { type: "application/octet-stream" }), {
        type: "application/octet-stream",
        includeFilename: false,
        progressHandler: ({ loaded, total }) => {
          bar.value = total ? Math.round((loaded / total) * 100) : 0;
        },
      });
      const mimetype = imageType(file);
      await client.sendMessage(roomId, {
        msgtype: "m.image",
        body: file.name || "photo",
        info: { mimetype, size: file.size },
        file: { ...info, url: upload.content_uri },
      });
      bar.value = 100;
      sent += 1;
    } catch {
      notice(`Photo ${index + 1} was not sent. Please try again.`);
    }
  }
  box.hidden = true;
  if (sent) notice(sent === 1 ? "1 photo sent." : `${sent} photos sent.`);
}

// ---- start ------------------------------------------------------------------------------------------

/** The poster's QR code opens the page with no token: one is asked for only when the patient taps Start
 * (never on a mere visit, so link previews and prefetchers mint nothing). */
async function posterToken() {
  showScreen("poster");
  await new Promise((resolve) => $("start-button").addEventListener("click", resolve, { once: true }));
  showScreen("loading");
  loading("Checking your link");
  const { status, json } = await api("poster-link", {});
  if (status === 200 && typeof json.token === "string") return json.token;
  refuse(status === 429 ? "busy" : "unknown");
  return null;
}

async function checkStatus(token) {
  const { status, json } = await api("status", { token });
  if (status === 200 && json.state === "open") return true;
  await wipe();
  refuse(json.state === "expired" ? "expired" : json.state === "unknown" ? "unknown" : "closed");
  return false;
}

async function firstVisit(token, tokenHash) {
  loading("Checking your link");
  const { status, json } = await api("redeem", { token });
  if (status !== 200) {
    refuse(json.error);
    return null;
  }
  loading("Creating your private chat");
  const password = randomSecret();
  const registered = await register(json.homeserver_url, json.username, password, json.registration_token);
  const session = {
    tokenHash,
    homeserverUrl: json.homeserver_url,
    botUserId: json.bot_user_id,
    userId: registered.user_id,
    deviceId: registered.device_id,
    accessToken: registered.access_token,
    token, // so that a visit without it (the poster's plain address again) comes back to this chat
    password,
    crossSigned: false,
    ready: false,
  };
  saveSession(session);
  return session;
}

async function main() {
  let token = new URLSearchParams(location.hash.slice(1)).get("t");
  const configResponse = await api("config");
  if (configResponse.status === 200) config = configResponse.json;
  if (config.practice_name) {
    $("practice-name").textContent = config.practice_name;
    document.title = `Send photos to ${config.practice_name}`;
  }
  if (token === "") {
    refuse("unknown");
    return;
  }
  if (token === null) {
    token = loadSession()?.token ?? (await posterToken());
    if (!token) return;
    history.replaceState(null, "", `#t=${encodeURIComponent(token)}`); // a reload comes back here
  }
  linkToken = token;
  const tokenHash = await sha256Hex(token);
  let session = loadSession();
  if (session && session.tokenHash !== tokenHash) {
    await wipe(); // another link's chat: nothing of it is kept beside this one
    session = null;
  }
  if (session && !(await checkStatus(token))) return;
  if (!session) session = await firstVisit(token, tokenHash);
  if (!session) return;
  await startClient(session);
  if (!session.ready) {
    loading("Asking your practice to open the chat");
    const { status } = await api("ready", { token, user_id: session.userId });
    if (status !== 200) throw new Error(`ready refused: ${status}`);
    session.ready = true;
    saveSession(session);
  }
  loading("Waiting for your practice to say hello");
  chooseRoom();
  setInterval(() => checkStatus(token), STATUS_EVERY_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") checkStatus(token);
  });
}

function wire() {
  // Another link followed in this tab changes only the fragment: start again from it.
  window.addEventListener("hashchange", () => location.reload());
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("message-input");
    const text = input.value;
    input.value = "";
    sendText(text);
  });
  $("photo-input").addEventListener("change", (event) => {
    const files = Array.from(event.target.files ?? []);
    event.target.value = "";
    sendPhotos(files);
  });
}

wire();
main().catch(() => {
  showMessage(
    "Something went wrong",
    "The chat could not be opened. Please try the link again in a few minutes.",
  );
});
