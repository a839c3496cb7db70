import { createHash, timingSafeEqual } from "node:crypto"
import { isIPv4 } from "node:net"

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"])

/** 127.0.0.0/8 as an address, not a name that merely starts with "127." (127.attacker.example). */
export const isLoopback = (host: string): boolean => LOOPBACK.has(host) || (isIPv4(host) && host.startsWith("127."))

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/**
 * Compares a presented bearer token with the configured one in constant time: both are hashed
 * first so that neither the length nor a common prefix leaks through timing.
 */
export const tokenMatches = (authorization: string | undefined, token: string): boolean => {
  const presented = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1]?.trim() ?? ""
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0
}
