import { type ParsedMail, simpleParser } from "mailparser"
import { SMTPServer, type SMTPServerDataStream } from "smtp-server"

/** One message as the server took it: the SMTP envelope, the parsed MIME and the bytes on the wire. */
export interface ReceivedMail {
  readonly envelope: { readonly from: string; readonly to: ReadonlyArray<string> }
  readonly parsed: ParsedMail
  readonly raw: Buffer
  /** Whether the message came over TLS (implicit TLS or after STARTTLS). */
  readonly secure: boolean
}

export interface SmtpTestServer {
  /** `smtp://127.0.0.1:<port>` (`smtps://` for `tls: "implicit"`); add credentials or query options as a test needs. */
  readonly url: string
  readonly port: number
  /** Every message accepted so far, in order; a send resolves only after its message is here. */
  readonly received: ReadonlyArray<ReceivedMail>
  /** The logins the server accepted (it takes any credentials). */
  readonly logins: ReadonlyArray<{ readonly username: string; readonly password: string }>
  /** SMTP connections clients have opened so far, and how many of them are still open. */
  readonly connections: () => { readonly opened: number; readonly open: number }
  /**
   * Answers every RCPT TO and DATA with `code` (4xx: transient, 5xx: permanent) until called
   * with null, or for `forMs` milliseconds when given.
   */
  readonly failAll: (code: number | null, forMs?: number) => void
  /**
   * Answers this share (0..1) of RCPT TO commands with `code` (451 unless told: a transient refusal,
   * as a greylisting or overloaded server gives), at random, until called with 0. A refused message
   * is not kept.
   */
  readonly failRandomly: (rate: number, code?: number) => void
  /** Answers RCPT TO for this address with `code` (550 unless told), as a mailbox server does. */
  readonly rejectRecipient: (address: string, code?: number) => void
  readonly close: () => Promise<void>
}

export interface SmtpServerOptions {
  /** "none" (default): plain SMTP, STARTTLS not offered; "starttls": offered; "implicit": TLS from the first byte. */
  readonly tls?: "none" | "starttls" | "implicit"
}

/**
 * The replies name the recipient the way Postfix does ("<bob@example.com>: Recipient address
 * rejected"), so a sender that copies the server's text into its reason is caught by the tests.
 */
const smtpError = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code })

const describe = (code: number, address: string): string =>
  code >= 500
    ? `5.1.1 <${address}>: Recipient address rejected: mailbox unavailable`
    : `4.3.0 <${address}>: Recipient address temporarily deferred`

/** A real SMTP server on a free loopback port (smtp-server), with programmable failures. */
export const startSmtpServer = async (options: SmtpServerOptions = {}): Promise<SmtpTestServer> => {
  const mode = options.tls ?? "none"
  const received: Array<ReceivedMail> = []
  const logins: Array<{ username: string; password: string }> = []
  const rejected = new Map<string, number>()
  let failing: number | null = null
  let randomRate = 0
  let randomCode = 451
  let failingTimer: NodeJS.Timeout | undefined
  let opened = 0
  let open = 0

  const server = new SMTPServer({
    secure: mode === "implicit",
    ...(mode === "none" ? { disabledCommands: ["STARTTLS"] } : {}),
    authOptional: true,
    allowInsecureAuth: true,
    logger: false,
    // Pooled clients keep idle connections open; closing must not wait the default 30 s for them.
    closeTimeout: 100,
    onConnect(_session, callback) {
      opened += 1
      open += 1
      callback()
    },
    onClose() {
      open -= 1
    },
    onAuth(auth, _session, callback) {
      logins.push({ username: auth.username ?? "", password: auth.password ?? "" })
      callback(null, { user: auth.username })
    },
    onRcptTo(address, _session, callback) {
      const code = failing ?? rejected.get(address.address.toLowerCase()) ?? (randomRate > 0 && Math.random() < randomRate ? randomCode : undefined)
      callback(code === undefined ? null : smtpError(code, describe(code, address.address)))
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", () => {
        const recipients = session.envelope.rcptTo.map((r) => r.address)
        if (failing !== null) {
          callback(smtpError(failing, describe(failing, recipients[0] ?? "")))
          return
        }
        const raw = Buffer.concat(chunks)
        simpleParser(raw).then(
          (parsed) => {
            const from = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address
            received.push({ envelope: { from, to: recipients }, parsed, raw, secure: session.secure })
            callback()
          },
          (error: unknown) => callback(smtpError(554, `5.6.0 message could not be parsed: ${String(error)}`))
        )
      })
    }
  })

  const port = await new Promise<number>((ok, fail) => {
    server.on("error", fail)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", fail)
      // A client dropping its connection mid-test is expected, not a reason to crash the test process.
      server.on("error", () => {})
      const address = server.server.address()
      if (typeof address === "object" && address !== null) ok(address.port)
      else fail(new Error("the SMTP server has no port"))
    })
  })

  return {
    url: `${mode === "implicit" ? "smtps" : "smtp"}://127.0.0.1:${port}`,
    port,
    received,
    logins,
    connections: () => ({ opened, open }),
    failAll: (code, forMs) => {
      clearTimeout(failingTimer)
      failing = code
      if (code !== null && forMs !== undefined) {
        failingTimer = setTimeout(() => (failing = null), forMs)
        failingTimer.unref()
      }
    },
    failRandomly: (rate, code = 451) => {
      randomRate = Math.min(1, Math.max(0, rate))
      randomCode = code
    },
    rejectRecipient: (address, code = 550) => {
      rejected.set(address.toLowerCase(), code)
    },
    close: () =>
      new Promise<void>((ok) => {
        clearTimeout(failingTimer)
        server.close(() => ok())
      })
  }
}
