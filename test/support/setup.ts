import { afterAll } from "vitest"
import { removeTempDirs } from "./engine.ts"

// Registered before the file's own hooks, so it runs after them (vitest runs `afterAll` hooks in
// reverse order): the engines the file started are stopped by then.
afterAll(removeTempDirs)
