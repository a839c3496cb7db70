import { Data, Predicate } from "effect"
import type RequestClient from "twilio/lib/base/RequestClient.js"
import type * as Http from "twilio/lib/http/response.js"

/**
 * A non-2xx answer from Twilio, with its headers. The SDK's own RestException keeps the status and
 * the body but drops the headers, and a 429 or 503 may say when to come back (Retry-After).
 */
export class TwilioAnswer extends Data.TaggedError("TwilioAnswer")<{
  readonly status: number
  readonly body: unknown
  readonly headers: Readonly<Record<string, unknown>>
}> {}

/** `https://api.twilio.com/2010-04-01/…?q` → `<apiUrl origin><apiUrl path>/2010-04-01/…?q`. */
export const rebase = (apiUrl: URL, uri: string): string => {
  const target = new URL(uri)
  const prefix = apiUrl.pathname.replace(/\/+$/, "")
  return `${apiUrl.origin}${prefix}${target.pathname}${target.search}`
}

/**
 * The SDK's documented extension point for transport (`httpClient`): every request the SDK makes
 * (create, list, and the list's next pages, whose URIs the SDK makes absolute on api.twilio.com)
 * goes to TWILIO_API_URL instead, keeping any path prefix, so regional edges, proxies and local
 * servers all work.
 *
 * Made with the SDK's class once the SDK is loaded (TwilioSms.ts, when a Twilio sender is made): the
 * SDK is half of the engine's bundle by size, kept out of it and out of every start without Twilio
 * (README, Commands).
 */
export const originClientClass = (Base: typeof RequestClient) =>
  class OriginClient extends Base {
    readonly apiUrl: URL

    constructor(apiUrl: URL, timeoutMs: number) {
      super({ timeout: timeoutMs, keepAlive: true })
      this.apiUrl = apiUrl
    }

    override request<TData>(opts: RequestClient.RequestOptions<TData>): Promise<Http.default<TData>> {
      return super.request({ ...opts, uri: rebase(this.apiUrl, opts.uri) }).then((response) =>
        response.statusCode >= 400
          ? Promise.reject(new TwilioAnswer({ status: response.statusCode, body: response.body, headers: plainHeaders(response.headers) }))
          : response
      )
    }
  }

/** axios hands over AxiosHeaders; its JSON copy has the names as Node received them (lower case). */
const plainHeaders = (headers: unknown): Readonly<Record<string, unknown>> => {
  const plain: unknown = Predicate.hasProperty(headers, "toJSON") && Predicate.isFunction(headers.toJSON) ? headers.toJSON() : headers
  return Predicate.isRecord(plain) ? Object.fromEntries(Object.entries(plain).map(([name, value]) => [name.toLowerCase(), value])) : {}
}
