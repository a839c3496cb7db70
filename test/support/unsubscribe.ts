import { createHmac } from "node:crypto"

/**
 * An unsubscribe link's signature computed here, apart from the engine's code, as README documents
 * it: HMAC-SHA256 of "unsubscribe\n<member>\n<channel>" with MEMBERFLOW_UNSUBSCRIBE_KEY, base64url,
 * the first 22 characters.
 */
export const linkSignature = (key: string, memberId: string, channel: string): string =>
  createHmac("sha256", key).update(`unsubscribe\n${memberId}\n${channel}`).digest("base64url").slice(0, 22)
