import { ConfigProvider, Effect, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { brandConfig, unsubscribeUrlOf } from "../../engine/journeys/Context.ts"
import { checkLink } from "../../engine/UnsubscribeLink.ts"
import { linkSignature } from "../support/unsubscribe.ts"

/**
 * The unsubscribe links' signature and its check (engine/UnsubscribeLink.ts); the links end to end, from
 * an email to the member's consent, are in test/engine/Channels.test.ts.
 */

const KEY = "0123456789abcdef-unsubscribe"
const independent = (memberId: string, channel: string) => linkSignature(KEY, memberId, channel)

const brandFrom = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(brandConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

describe("unsubscribe links", () => {
  it("are signed per member and channel, and the signature is checked as computed independently", () => {
    const brand = brandFrom({ MEMBERFLOW_PUBLIC_URL: "https://m.maison.example/", MEMBERFLOW_UNSUBSCRIBE_KEY: KEY })
    if (brand._tag === "Left") throw new Error(String(brand.left))
    const link = unsubscribeUrlOf(brand.right, "會員 1&2", "email")
    expect(link).toBe(`https://m.maison.example/unsubscribe?member=${encodeURIComponent("會員 1&2")}&channel=email&sig=${independent("會員 1&2", "email")}`)
    const query = new URL(link).searchParams
    expect(checkLink(Redacted.make(KEY), query)).toEqual({ ok: true, memberId: "會員 1&2", channel: "email" })
    // Another key, member or channel, a cut signature: not valid; a missing part or an unknown channel: incomplete.
    const forged = (change: Record<string, string | null>) => {
      const changed = new URLSearchParams(query)
      for (const [name, value] of Object.entries(change)) value === null ? changed.delete(name) : changed.set(name, value)
      return checkLink(Redacted.make(KEY), changed)
    }
    expect(checkLink(Redacted.make(`${KEY}x`), query)).toMatchObject({ ok: false, status: 403 })
    expect(forged({ member: "會員 1&3" })).toMatchObject({ ok: false, status: 403 })
    expect(forged({ channel: "sms" })).toMatchObject({ ok: false, status: 403 })
    expect(forged({ sig: independent("會員 1&2", "email").slice(0, 21) })).toMatchObject({ ok: false, status: 403 })
    expect(forged({ sig: null })).toMatchObject({ ok: false, status: 400 })
    expect(forged({ member: null })).toMatchObject({ ok: false, status: 400 })
    expect(forged({ channel: "fax", sig: independent("會員 1&2", "fax") })).toMatchObject({ ok: false, status: 400 })
    expect(forged({ member: "m".repeat(129) })).toMatchObject({ ok: false, status: 400 })
  })

  it("without a key are unsigned; a key shorter than 16 characters is refused at start, naming the setting", () => {
    const unsigned = brandFrom({})
    if (unsigned._tag === "Left") throw new Error(String(unsigned.left))
    expect(unsubscribeUrlOf(unsigned.right, "m1", "sms")).toBe("http://127.0.0.1:8787/unsubscribe?member=m1&channel=sms")
    // With no public URL, the engine's own admin API on its port.
    for (const env of [{ MEMBERFLOW_HTTP_PORT: "9187" }, { MEMBERFLOW_HTTP_PORT: "9187", MEMBERFLOW_PUBLIC_URL: " " }]) {
      const onPort = brandFrom(env)
      expect(onPort._tag === "Right" ? unsubscribeUrlOf(onPort.right, "m1", "email") : "refused").toBe("http://127.0.0.1:9187/unsubscribe?member=m1&channel=email")
    }
    // At its own host too: the address it binds, loopback for every interface.
    for (const [host, origin] of [["10.0.0.5", "http://10.0.0.5:9187"], ["0.0.0.0", "http://127.0.0.1:9187"], ["fd00::5", "http://[fd00::5]:9187"]] as const) {
      const onHost = brandFrom({ MEMBERFLOW_HTTP_PORT: "9187", MEMBERFLOW_HTTP_HOST: host })
      expect(onHost._tag === "Right" ? unsubscribeUrlOf(onHost.right, "m1", "email") : "refused", host).toBe(`${origin}/unsubscribe?member=m1&channel=email`)
    }
    // Empty, as docker-compose passes one left unset: the same.
    const empty = brandFrom({ MEMBERFLOW_UNSUBSCRIBE_KEY: "" })
    expect(empty._tag === "Right" ? empty.right.unsubscribeKey : "refused").toBeNull()
    const short = brandFrom({ MEMBERFLOW_UNSUBSCRIBE_KEY: "too-short" })
    expect(short._tag).toBe("Left")
    expect(String(short._tag === "Left" ? short.left : "")).toContain("MEMBERFLOW_UNSUBSCRIBE_KEY must be at least 16 characters")
  })
})
