#!/usr/bin/env node
// npm run build: bundles the CLI and the engine into dist/engine/main.mjs with esbuild, the engine's
// event reader thread into dist/engine/reader.mjs (engine/ingest/EventReader.ts), and lists the
// files they were built from in dist/engine/inputs.json (bin/bundle.js runs the bundle only while
// none of them has changed). chDB and the twilio SDK stay outside (see `external`).
import { build } from "esbuild"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { bundlePaths, ROOT } from "./bundle.js"

const entry = join(ROOT, "engine/main.ts")
// `npm install` runs this (`prepare`) before the sources are there in a Docker build's first layer.
if (!existsSync(entry)) process.exit(0)
const { bundle, reader, inputs } = bundlePaths()
mkdirSync(join(ROOT, "dist/engine"), { recursive: true })
const bundleOf = (entryPoint, outfile) => build({
  // The metafile's input paths are relative to this: the project's root, whatever the caller's cwd.
  absWorkingDir: ROOT,
  entryPoints: [entryPoint],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // chDB loads a native library. The twilio SDK is half the bundle by size and loaded only once the
  // Twilio sender is made (channels/sms/TwilioSms.ts): from node_modules, as a Docker image has it.
  external: ["chdb", "twilio"],
  metafile: true,
  // Stack traces name the bundle's lines; `node --enable-source-maps bin/memberflow.js …` (or
  // MEMBERFLOW_NO_BUNDLE=1) names the sources' instead. Off by default: reading the map costs a
  // start about 1.3 s and 270 MB.
  sourcemap: "linked",
  logLevel: "warning",
  // The CommonJS packages inside call require(), __dirname and __filename, which an ES module lacks.
  banner: {
    js: [
      'import { createRequire as __memberflowRequire } from "node:module";',
      'import { fileURLToPath as __memberflowPath } from "node:url";',
      "const require = __memberflowRequire(import.meta.url);",
      "const __filename = __memberflowPath(import.meta.url);",
      'const __dirname = __memberflowPath(new URL(".", import.meta.url));'
    ].join("\n")
  }
})
// The project's own files, this script, and npm's record of what is installed: an `npm install`
// that changes a dependency makes the bundle stale too.
const results = await Promise.all([bundleOf(entry, bundle), bundleOf(join(ROOT, "engine/ingest/ReaderThread.ts"), reader)])
const own = [...new Set(results.flatMap((result) => Object.keys(result.metafile.inputs)))].filter((path) => !path.split("/").includes("node_modules"))
const installed = "node_modules/.package-lock.json"
const listed = [...own, "bin/build.js", ...(existsSync(join(ROOT, installed)) ? [installed] : [])]
writeFileSync(inputs, `${JSON.stringify(listed, null, 1)}\n`)
