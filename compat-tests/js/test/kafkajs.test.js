'use strict'
// kafkajs 2.2.4 against vltava: admin, producer, offsets.
//
// kafkajs consumers always join a consumer group, and the broker has no
// consumer-group APIs yet, so consumer tests will be added when groups land.
// Producers are non-idempotent (kafkajs' default) except in the idempotence test.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel, CompressionTypes, Partitioners } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')

let broker
let kafka
let admin

before(async () => {
  broker = await startBroker()
  kafka = new Kafka({
    clientId: 'vltava-compat-kafkajs',
    brokers: [broker.bootstrap],
    logLevel: logLevel.ERROR,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: 3 }
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (admin) await admin.disconnect()
  if (broker) await broker.stop()
})

function newProducer (opts = {}) {
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: false,
    allowAutoTopicCreation: true,
    ...opts
  })
}

async function withLogs (fn) {
  try {
    return await fn()
  } catch (e) {
    e.message += `\n--- last broker output ---\n${broker.logs().split('\n').slice(-40).join('\n')}`
    throw e
  }
}

test('admin: create, list, describe, delete topics', () => withLogs(async () => {
  const topic = uniqueTopic('js-admin')
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
    timeout: 30_000
  })
  assert.equal(created, true)
  assert.ok((await admin.listTopics()).includes(topic))

  const cluster = await admin.describeCluster()
  assert.deepEqual(cluster.brokers.map(b => `${b.host}:${b.port}`), [broker.bootstrap])
  const nodeId = cluster.brokers[0].nodeId

  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics.length, 1)
  const parts = md.topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
  assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
  for (const p of parts) {
    assert.equal(p.partitionErrorCode, 0)
    assert.equal(p.leader, nodeId)
    assert.deepEqual(p.replicas, [nodeId])
    assert.deepEqual(p.isr, [nodeId])
  }

  // Creating an existing topic resolves to false (TOPIC_ALREADY_EXISTS).
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] }), false)

  await admin.deleteTopics({ topics: [topic], timeout: 30_000 })
  assert.ok(!(await admin.listTopics()).includes(topic), 'topic still listed after deleteTopics')
}))

for (const [acks, compression, name] of [
  [-1, CompressionTypes.None, 'acks=-1 none'],
  [-1, CompressionTypes.GZIP, 'acks=-1 gzip'],
  [1, CompressionTypes.None, 'acks=1 none'],
  [1, CompressionTypes.GZIP, 'acks=1 gzip']
]) {
  test(`producer send ${name}: offsets per partition and fetchTopicOffsets`, () => withLogs(async () => {
    const topic = uniqueTopic('js-produce')
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
    const producer = newProducer()
    await producer.connect()
    try {
      const counts = [0, 0, 0]
      for (let round = 0; round < 3; round++) {
        const messages = []
        for (let i = 0; i < 60; i++) {
          const partition = i % 3
          messages.push({
            partition,
            key: i % 10 === 5 ? null : `key-${round}-${i}`,
            value: `value ${round}/${i} `.repeat(1 + (i % 8)),
            headers: { round: String(round), i: Buffer.from([i]) }
          })
        }
        const res = await producer.send({ topic, acks, compression, messages })
        const byPartition = new Map(res.map(r => [r.partition, r]))
        assert.equal(byPartition.size, 3, JSON.stringify(res))
        for (let p = 0; p < 3; p++) {
          const r = byPartition.get(p)
          assert.equal(r.topicName, topic)
          assert.equal(r.errorCode, 0)
          assert.equal(r.baseOffset, String(counts[p]), `round ${round} partition ${p}`)
          counts[p] += 20
        }
      }
      const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
      assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high, o.offset]), [
        [0, '0', '60', '60'],
        [1, '0', '60', '60'],
        [2, '0', '60', '60']
      ])
    } finally {
      await producer.disconnect()
    }
  }))
}

test('producer auto-creates topics and sendBatch spans topics', () => withLogs(async () => {
  const t1 = uniqueTopic('js-auto-a')
  const t2 = uniqueTopic('js-auto-b')
  const producer = newProducer()
  await producer.connect()
  try {
    const res = await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: t1, messages: [{ key: 'a', value: '1' }, { key: 'b', value: '2' }] },
        { topic: t2, messages: [{ value: 'only value' }] }
      ]
    })
    const got = res.map(r => [r.topicName, r.partition, r.errorCode, r.baseOffset]).sort()
    assert.deepEqual(got, [[t1, 0, 0, '0'], [t2, 0, 0, '0']].sort())
    const o1 = await admin.fetchTopicOffsets(t1)
    assert.deepEqual(o1.map(o => [o.partition, o.low, o.high]), [[0, '0', '2']])
  } finally {
    await producer.disconnect()
  }
}))

test('fetchTopicOffsetsByTimestamp', () => withLogs(async () => {
  const topic = uniqueTopic('js-ts')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  const producer = newProducer()
  await producer.connect()
  const t0 = Date.now() - 600_000
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, timestamp: String(t0 + 1000 * i) }))
    })
  } finally {
    await producer.disconnect()
  }
  const at = async ts => (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).map(o => [o.partition, o.offset])
  assert.deepEqual(await at(t0 - 1), [[0, '0']])
  assert.deepEqual(await at(t0 + 2000), [[0, '2']])
  assert.deepEqual(await at(t0 + 2001), [[0, '3']])
  // Later than every record: the broker answers -1 and kafkajs substitutes the high watermark.
  assert.deepEqual(await at(t0 + 60_000), [[0, '6']])
}))

test('idempotent producer (InitProducerId + sequence numbers)', () => withLogs(async () => {
  const topic = uniqueTopic('js-idem')
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true })
  const producer = newProducer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const counts = [0, 0]
    for (let round = 0; round < 4; round++) {
      const messages = Array.from({ length: 30 }, (_, i) => ({ partition: i % 2, key: `r${round}-${i}`, value: `v${round}-${i}` }))
      const res = await producer.send({ topic, acks: -1, compression: round % 2 ? CompressionTypes.GZIP : CompressionTypes.None, messages })
      for (const r of res) {
        assert.equal(r.errorCode, 0)
        assert.equal(r.baseOffset, String(counts[r.partition]), `round ${round} partition ${r.partition}`)
        counts[r.partition] += 15
      }
    }
    const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', '60'], [1, '0', '60']])
  } finally {
    await producer.disconnect()
  }
}))
