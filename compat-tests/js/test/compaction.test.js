'use strict'
// kafkajs 2.2.4 reading a compacted topic (cleanup.policy=compact): offsets with gaps, and an
// idempotent producer's last batch kept with no records (as Kafka's cleaner keeps it).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')

const KEYS = 20
const TIMEOUT_MS = 60_000

let broker
let kafka

before(async () => {
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-cfg-')), 'vltava.toml')
  fs.writeFileSync(cfg, 'log_cleaner_backoff_ms = 50\ngroup_initial_rebalance_delay_ms = 0\n')
  broker = await startBroker({ extraArgs: ['--config', cfg] })
  kafka = new Kafka({
    clientId: 'vltava-compat-kafkajs',
    brokers: [broker.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 }
  })
})

after(async () => {
  if (broker) await broker.stop()
})

/** Every record from the start to `end`, as [offset, key, value], read by a fresh consumer group. */
async function readAll (topic, end) {
  const consumer = kafka.consumer({ groupId: uniqueTopic('js-compact-read'), maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const out = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${out.length} records, none at ${end - 1}`)), TIMEOUT_MS)
    consumer.run({
      eachMessage: async ({ message }) => {
        out.push([Number(message.offset), message.key.toString(), message.value.toString()])
        if (Number(message.offset) >= end - 1) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  return out
}

test('kafkajs reads a compacted log with gaps and emptied batches', async () => {
  const topic = uniqueTopic('js-compact')
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [{
      topic,
      numPartitions: 1,
      configEntries: [
        { name: 'cleanup.policy', value: 'compact' },
        { name: 'segment.bytes', value: '2048' },
        { name: 'min.cleanable.dirty.ratio', value: '0.01' }
      ]
    }]
  })
  await admin.disconnect()

  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  await idempotent.connect()
  for (let k = 0; k < KEYS; k++) {
    await idempotent.send({ topic, messages: [{ key: `k${k}`, value: 'old' }] })
  }
  await idempotent.disconnect()
  const plain = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await plain.connect()
  await plain.send({ topic, messages: Array.from({ length: KEYS }, (_, k) => ({ key: `k${k}`, value: 'new' })) })
  for (let round = 0; round < 10; round++) {
    const fillers = Array.from({ length: 20 }, (_, i) => ({ key: `filler${i % 10}`, value: `f${round}-${i}` }))
    await plain.send({ topic, messages: fillers })
  }
  await plain.disconnect()
  const end = 2 * KEYS + 200

  // Read until the cleaner has removed every superseded value of the k keys; each read that still
  // finds one waits for the next compaction pass.
  let records
  for (;;) {
    const pass = broker.nextLine(new RegExp(`compacted log.*${topic}-0`), TIMEOUT_MS)
    pass.catch(() => {})
    records = await readAll(topic, end)
    if (!records.some(([, , v]) => v === 'old')) break
    await pass
  }
  const offsets = records.map(([o]) => o)
  assert.deepEqual(offsets, [...new Set(offsets)].sort((a, b) => a - b), 'offsets increase, once each')
  assert.ok(records.length < end, 'compaction removed records')
  assert.equal(offsets[offsets.length - 1], end - 1)
  const latest = Object.fromEntries(records.filter(([, k]) => k.startsWith('k')).map(([, k, v]) => [k, v]))
  assert.deepEqual(latest, Object.fromEntries(Array.from({ length: KEYS }, (_, k) => [`k${k}`, 'new'])))
})
