#!/usr/bin/env node
// The CLI runs the TypeScript sources through tsx's loader: no build step between edit and run.
import { register } from "tsx/esm/api"

register()
await import("../engine/main.ts")
