'use strict'
// A kafkajs transactional producer in a process of its own, so that a test can SIGKILL it
// mid-transaction: `node lib/txn-child.js BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TIMEOUT_MS`. It
// begins a transaction, sends COUNT records `dead-<i>` to partition 0 and, once they are acknowledged,
// prints `produced FIRST LAST` and stays open (never commits) until killed.

const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const [bootstrap, transactionalId, topic, count, timeoutMs] = process.argv.slice(2)
  const kafka = new Kafka({ clientId: 'vltava-txn-child', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: Number(timeoutMs)
  })
  await producer.connect()
  const txn = await producer.transaction()
  const n = Number(count)
  const [meta] = await txn.send({
    topic,
    messages: Array.from({ length: n }, (_, i) => ({ partition: 0, value: `dead-${i}` }))
  })
  const first = Number(meta.baseOffset)
  process.stdout.write(`produced ${first} ${first + n - 1}\n`)
  // Keep the process (and the open transaction) alive until the test kills it.
  setInterval(() => {}, 1 << 30)
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
