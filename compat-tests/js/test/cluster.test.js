'use strict'
// kafkajs 2.2.4 against a 3-node vltava cluster on 127.0.0.1-3 (lib/cluster.js): a topic with
// replication factor 3 and min.insync.replicas=2 created through the admin client, 300 records from
// an idempotent (acks=all) producer bootstrapping from node 1, read by a consumer group bootstrapping
// from node 2: every acknowledged record exactly once, at the offset it was acknowledged at; Metadata
// shows 3 replicas and an ISR of 3 for every partition.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes, Kafka, logLevel, Partitioners } = require('kafkajs')
const { startCluster } = require('../lib/cluster')
const { uniqueTopic } = require('../lib/broker')

const N = 300
const PARTITIONS = 3
const TIMEOUT_MS = 60_000

let cluster

before(async () => {
  cluster = await startCluster(3)
})

after(async () => {
  if (cluster) await cluster.stop()
})

function client (id) {
  return new Kafka({
    clientId: 'vltava-compat-kafkajs-cluster',
    brokers: [cluster.bootstrap(id)],
    logLevel: logLevel.ERROR,
    requestTimeout: 30_000,
    retry: { retries: 5 }
  })
}

// Polls Metadata until every partition has 3 replicas and an ISR of 3.
async function awaitReplicated (admin, topic) {
  const until = Date.now() + TIMEOUT_MS
  for (;;) {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    const parts = topics[0].partitions
    if (parts.length === PARTITIONS && parts.every(p => p.replicas.length === 3 && p.isr.length === 3)) return
    if (Date.now() > until) assert.fail(`${topic}: want 3 replicas and an ISR of 3: ${JSON.stringify(parts)}`)
    await new Promise(resolve => setTimeout(resolve, 200)) // polling Metadata with a deadline
  }
}

test('RF=3: idempotent acks=all producer on node 1, consumer group on node 2, each record once', async t => {
  try {
    await rf3(t)
  } catch (e) {
    console.error(`--- cluster output ---\n${cluster.logs()}\n--- end ---`)
    throw e
  }
})

async function rf3 (t) {
  const topic = uniqueTopic('cl-kafkajs')
  const admin = client(1).admin()
  await admin.connect()
  t.after(() => admin.disconnect())
  assert.equal(await admin.createTopics({
    waitForLeaders: true,
    topics: [{
      topic,
      numPartitions: PARTITIONS,
      replicationFactor: 3,
      configEntries: [{ name: 'min.insync.replicas', value: '2' }]
    }]
  }), true)
  const [described] = (await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['min.insync.replicas'] }]
  })).resources
  assert.deepEqual(described.configEntries.map(c => [c.configName, c.configValue]), [['min.insync.replicas', '2']])
  await awaitReplicated(admin, topic)

  const producer = client(1).producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const acked = []
  for (let batch = 0; batch < N / 50; batch++) {
    const messages = []
    for (let i = batch * 50; i < (batch + 1) * 50; i++) messages.push({ key: `k${i % 17}`, value: `v${i}` })
    // kafkajs answers a send with each partition's base offset: that partition's records of the send
    // are acknowledged at it and the offsets after it, in order.
    const res = await producer.send({ topic, acks: -1, messages })
    const sent = new Map(res.map(r => [r.partition, BigInt(r.baseOffset)]))
    acked.push({ messages, sent })
  }
  await producer.disconnect()

  const consumer = client(2).consumer({ groupId: uniqueTopic('g'), sessionTimeout: 6000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = new Map()
  let total = 0
  let done
  const all = new Promise((resolve, reject) => {
    done = resolve
    setTimeout(() => reject(new Error(`consumed ${total} of ${N}`)), TIMEOUT_MS).unref()
  })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const list = got.get(partition) ?? []
      got.set(partition, list)
      list.push([BigInt(message.offset), message.key.toString(), message.value.toString()])
      total += 1
      if (total === N) done()
    }
  })
  await all
  await consumer.disconnect()

  // Each partition: offsets consecutive from 0, and for each send the records of one partition start
  // at the base offset kafkajs was given; every value once over all partitions.
  const values = []
  const keyPartition = new Map()
  for (const [p, list] of got) {
    list.forEach(([off, key], i) => {
      assert.equal(off, BigInt(i), `partition ${p}: record ${i} at offset ${off}`)
      assert.equal(keyPartition.get(key) ?? p, p, `key ${key} in two partitions`)
      keyPartition.set(key, p)
    })
    values.push(...list.map(([, , v]) => v))
  }
  assert.equal(values.length, N)
  assert.equal(new Set(values).size, N)
  for (const { messages, sent } of acked) {
    for (const [p, base] of sent) {
      const mine = messages.filter(m => keyPartition.get(m.key) === p).map(m => m.value)
      const list = got.get(p)
      const at = list.findIndex(([off]) => off === base)
      assert.notEqual(at, -1, `partition ${p}: no record at acknowledged base offset ${base}`)
      assert.deepEqual(list.slice(at, at + mine.length).map(([, , v]) => v), mine, `partition ${p} from ${base}`)
    }
  }
  await awaitReplicated(admin, topic)
}
