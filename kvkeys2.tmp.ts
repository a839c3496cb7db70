import { connect } from "@nats-io/transport-node"
import { jetstream, DeliverPolicy } from "@nats-io/jetstream"
const nc = await connect({ servers: "127.0.0.1:4222", noAsyncTraces: true } as any)
const js = jetstream(nc)
const t0 = Date.now()
const consumer = await js.consumers.get("KV_KVTEST_1M", { filter_subjects: "$KV.KVTEST_1M.m.>", deliver_policy: DeliverPolicy.All, headers_only: true } as any)
const info = await consumer.info(true)
console.log("info after", Date.now() - t0, "pending", info.num_pending)
const ids = new Set<string>()
const messages = await consumer.consume({ max_messages: 10000 } as any)
let first = 0
for await (const msg of messages) {
  if (ids.size === 0) first = Date.now() - t0
  ids.add(msg.subject.slice("$KV.KVTEST_1M.m.".length))
  if (msg.info.pending === 0) break
}
messages.stop()
console.log("first after", first, "ms; keys", ids.size, (Date.now() - t0) / 1000, "s")
await nc.close()
