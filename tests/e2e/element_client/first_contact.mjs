// N first contacts from a patient's app on Element's crypto stack: matrix-js-sdk with its Rust crypto
// (initRustCrypto), cross-signed (bootstrapCrossSigning), in "exclude insecure devices" mode
// (OnlySignedDevicesIsolationMode). Each contact opens a new encrypted direct chat with the bot and waits
// for its first message: readable, undecryptable (still failing 10 s after the first failure: Element does
// not retry a message from a device it had not fetched), or missing (nothing within 60 s).
// Prints one JSON line: {"contacts", "readable", "undecryptable", "missing", "first_reply_ms": [...]}.
// Usage: node first_contact.mjs <base_url> <user_id> <password> <bot_user_id> <count>
// Node 20 lacks Promise.withResolvers, which the SDK uses.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((a, b) => { resolve = a; reject = b; });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel?.("warn");
const { OnlySignedDevicesIsolationMode } = await import("matrix-js-sdk/lib/crypto-api/index.js");

const [baseUrl, userId, password, botId, countText] = process.argv.slice(2);
const count = Number(countText);
const login = await sdk.createClient({ baseUrl }).login("m.login.password", {
  identifier: { type: "m.id.user", user: userId }, password, initial_device_display_name: "js-rust",
});
const client = sdk.createClient({ baseUrl, userId, accessToken: login.access_token, deviceId: login.device_id });
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
await crypto.bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password });
  },
});
crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());
await client.startClient({ initialSyncLimit: 10 });
await new Promise((resolve) => client.once(sdk.ClientEvent.Sync, (state) => resolve(state)));

const results = { contacts: 0, readable: 0, undecryptable: 0, missing: 0, first_reply_ms: [] };
for (let i = 0; i < count; i++) {
  const started = Date.now();
  const { room_id: roomId } = await client.createRoom({
    is_direct: true, preset: "trusted_private_chat", invite: [botId],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  let failedAt = 0;
  const outcome = await new Promise((resolve) => {
    const timer = setTimeout(() => { cleanup(); resolve("missing"); }, 60000);
    const check = async (event) => {
      if (event.getRoomId() !== roomId || event.getSender() !== botId) return;
      if (event.getWireType() !== "m.room.encrypted" && event.getType() !== "m.room.message") return;
      await client.decryptEventIfNeeded(event);
      if (event.isDecryptionFailure()) {
        if (!failedAt) { failedAt = Date.now(); setTimeout(() => { cleanup(); resolve("undecryptable"); }, 10000); }
        return;
      }
      if (event.getType() === "m.room.message") { cleanup(); resolve("readable"); }
    };
    const onDecrypted = (event) => check(event);
    const onTimeline = (event) => check(event);
    function cleanup() { clearTimeout(timer); client.off(sdk.RoomEvent.Timeline, onTimeline); client.off(sdk.MatrixEventEvent.Decrypted, onDecrypted); }
    client.on(sdk.RoomEvent.Timeline, onTimeline);
    client.on(sdk.MatrixEventEvent.Decrypted, onDecrypted);
  });
  results.contacts += 1;
  results[outcome] += 1;
  if (outcome === "readable") results.first_reply_ms.push(Date.now() - started);
}
client.stopClient();
console.log(JSON.stringify(results));
process.exit(0);
