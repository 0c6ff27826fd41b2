'use strict'
// kafkajs 2.2.4 consumer groups against vltava: two consumers share a topic through the group
// coordinator, commit, and a new consumer of the same group resumes at the committed offsets.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')

let broker
let kafka
let admin

before(async () => {
  // No initial rebalance delay: Kafka's 3 s default would only slow the test down.
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-groups-')), 'vltava.toml')
  fs.writeFileSync(cfg, 'group_initial_rebalance_delay_ms = 0\noffsets_topic_num_partitions = 5\n')
  broker = await startBroker({ extraArgs: ['--config', cfg] })
  kafka = new Kafka({
    clientId: 'vltava-compat-kafkajs-groups',
    brokers: [broker.bootstrap],
    logLevel: logLevel.ERROR,
    requestTimeout: 30_000,
    retry: { retries: 5 }
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (admin) await admin.disconnect()
  if (broker) await broker.stop()
})

/** Waiters on conditions over test state; consumer callbacks call notify() when state changes. */
const waiters = []
function notify () {
  for (const w of [...waiters]) {
    if (w.cond()) {
      waiters.splice(waiters.indexOf(w), 1)
      clearTimeout(w.timer)
      w.resolve()
    }
  }
}
function until (cond, ms, what) {
  if (cond()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const w = { cond, resolve }
    w.timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(w), 1)
      reject(new Error(`timed out: ${what()}`))
    }, ms)
    waiters.push(w)
  })
}

test('a kafkajs consumer group splits a topic and resumes from committed offsets', async () => {
  const topic = uniqueTopic('js-group')
  const groupId = uniqueTopic('js-g')
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true })
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: false })
  await producer.connect()
  const messages = Array.from({ length: 40 }, (_, i) => ({ partition: i % 4, value: `v${i}` }))
  await producer.send({ topic, messages })

  const seen = new Set()
  const owners = [new Set(), new Set()]
  const consumers = [0, 1].map(() => kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500 }))
  await Promise.all(consumers.map(async (c, i) => {
    c.on(c.events.GROUP_JOIN, e => {
      owners[i] = new Set((e.payload.memberAssignment[topic] || []))
      notify()
    })
    await c.connect()
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({ eachMessage: async ({ message }) => { seen.add(message.value.toString()); notify() } })
  }))
  await until(() => seen.size === 40 && owners[0].size === 2 && owners[1].size === 2, 60_000,
    () => `all 40 records and a 2+2 split (seen ${seen.size})`)
  assert.deepEqual([...owners[0], ...owners[1]].sort(), [0, 1, 2, 3])
  await Promise.all(consumers.map(c => c.disconnect()))

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.deepEqual(offsets[0].partitions.map(p => [p.partition, p.offset]).sort(),
    [[0, '10'], [1, '10'], [2, '10'], [3, '10']])
  const groups = await admin.listGroups()
  assert.ok(groups.groups.some(g => g.groupId === groupId && g.protocolType === 'consumer'))
  const described = await admin.describeGroups([groupId])
  assert.equal(described.groups[0].state, 'Empty')

  // New records; a fresh consumer in the same group resumes at offset 10 everywhere.
  await producer.send({ topic, messages: [0, 1, 2, 3].map(p => ({ partition: p, value: `late${p}` })) })
  await producer.disconnect()
  const late = []
  const c = kafka.consumer({ groupId })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  await c.run({ eachMessage: async ({ partition, message }) => { late.push([partition, message.offset]); notify() } })
  await until(() => late.length >= 4, 60_000, () => `resumed records (${late.length})`)
  await c.disconnect()
  assert.deepEqual(late.sort(), [[0, '10'], [1, '10'], [2, '10'], [3, '10']])
  await admin.deleteGroups([groupId])
  assert.ok(!(await admin.listGroups()).groups.some(g => g.groupId === groupId))
})
