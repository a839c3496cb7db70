#!/usr/bin/env node
// The bundle `npm run build` made, while it is up to date with the sources (bin/bundle.js); else the
// TypeScript sources through tsx's loader: no build step between edit and run.
import { pathToFileURL } from "node:url"
import { freshBundle } from "./bundle.js"

const bundle = freshBundle()
if (bundle !== null) {
  await import(pathToFileURL(bundle).href)
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../engine/main.ts")
}
