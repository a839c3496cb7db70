import { createHash, timingSafeEqual } from "node:crypto"
import { isIPv4, isIPv6 } from "node:net"

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"])

/** 127.0.0.0/8 as an address, not a name that merely starts with "127." (127.attacker.example). */
export const isLoopback = (host: string): boolean => LOOPBACK.has(host) || (isIPv4(host) && host.startsWith("127."))

/** Addresses that mean every interface of the machine when bound. */
const EVERY_INTERFACE = new Set(["0.0.0.0", "::", "[::]", ""])

/**
 * The host a process on this machine asks to reach an admin API bound to `host`, as it goes in a
 * URL: loopback for every interface (0.0.0.0 and :: take it too), the address or name itself
 * otherwise (an IPv6 address in brackets).
 */
export const urlHostFor = (host: string): string => {
  const bare = host.trim()
  if (EVERY_INTERFACE.has(bare)) return "127.0.0.1"
  return isIPv6(bare) ? `[${bare}]` : bare
}

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/**
 * Compares a presented bearer token with the configured one in constant time: both are hashed
 * first so that neither the length nor a common prefix leaks through timing.
 */
export const tokenMatches = (authorization: string | undefined, token: string): boolean => {
  const presented = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1]?.trim() ?? ""
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0
}
