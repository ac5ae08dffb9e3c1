// Builds the web chat into bot/web_chat/static/ (git-ignored; shipped in the wheel as package data):
// index.html, assets/app.js (+ chunks), assets/style.css and the crypto wasm at assets/pkg/, where the
// wasm package's own loader looks for it (new URL("./pkg/...", import.meta.url)). Each file also gets a
// gzip sibling (name.gz), which aiohttp's FileResponse and nginx's gzip_static serve to browsers that accept
// it: the crypto wasm is 7.8 MB as built and about 2.1 MB gzipped.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "bot", "web_chat", "static");
const assets = join(out, "assets");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(assets, "pkg"), { recursive: true });

await build({
  entryPoints: { app: join(here, "src", "main.js") },
  outdir: assets,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "linked",
  chunkNames: "chunk-[hash]",
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
copyFileSync(join(here, "src", "style.css"), join(assets, "style.css"));
copyFileSync(
  join(here, "node_modules", "@matrix-org", "matrix-sdk-crypto-wasm", "pkg", "matrix_sdk_crypto_wasm_bg.wasm"),
  join(assets, "pkg", "matrix_sdk_crypto_wasm_bg.wasm"),
);

for (const entry of readdirSync(out, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !/\.(html|js|css|wasm)$/.test(entry.name)) continue;
  const path = join(entry.parentPath, entry.name);
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
}
