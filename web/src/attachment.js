// Matrix encrypted attachments (client-server spec, "Sending encrypted attachments"): AES-CTR with a fresh
// 256-bit key and a 128-bit counter block whose low 64 bits start at zero, SHA-256 of the ciphertext, the key
// as a JWK. WebCrypto only; the homeserver sees ciphertext.

function unpaddedBase64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/=+$/, "");
}

/** {data: the ciphertext, info: the `file` object without its url}. */
export async function encryptAttachment(plaintext) {
  const key = await crypto.subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
  const iv = new Uint8Array(16);
  crypto.getRandomValues(iv.subarray(0, 8));
  const data = await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, plaintext);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const digest = await crypto.subtle.digest("SHA-256", data);
  return {
    data,
    info: {
      v: "v2",
      key: { alg: "A256CTR", ext: true, k: jwk.k, key_ops: ["encrypt", "decrypt"], kty: "oct" },
      iv: unpaddedBase64(iv),
      hashes: { sha256: unpaddedBase64(digest) },
    },
  };
}

const BY_EXTENSION = { heic: "image/heic", heif: "image/heif", jpg: "image/jpeg", jpeg: "image/jpeg",
  png: "image/png", webp: "image/webp", gif: "image/gif" };

/** The file's image type: what the browser says, or, where it says nothing (HEIC on some), its extension. */
export function imageType(file) {
  if (file.type) return file.type;
  const extension = (file.name.split(".").pop() ?? "").toLowerCase();
  return BY_EXTENSION[extension] ?? "application/octet-stream";
}
