'use strict'
// kafkajs 2.2.4 admin client: DescribeConfigs of a topic with overrides and of the broker.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')

let broker
let admin

before(async () => {
  broker = await startBroker()
  const kafka = new Kafka({
    clientId: 'vltava-compat-kafkajs-admin',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 }
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (admin) await admin.disconnect()
  if (broker) await broker.stop()
})

test('describeConfigs reports topic overrides, defaults and broker settings', async () => {
  const topic = uniqueTopic('js-configs')
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '5000' }] }],
    waitForLeaders: true
  })
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] },
      { type: ConfigResourceTypes.BROKER, name: '1', configNames: ['num.partitions'] }
    ]
  })
  const [t, b] = resources
  assert.equal(t.errorCode, 0)
  const byName = Object.fromEntries(t.configEntries.map((e) => [e.configName, e]))
  assert.deepEqual(Object.keys(byName).sort(), ['cleanup.policy', 'retention.ms'])
  assert.equal(byName['retention.ms'].configValue, '5000')
  assert.equal(byName['retention.ms'].isDefault, false)
  assert.equal(byName['cleanup.policy'].configValue, 'delete')
  assert.equal(byName['cleanup.policy'].isDefault, true)
  assert.equal(b.errorCode, 0)
  assert.deepEqual(b.configEntries.map((e) => [e.configName, e.configValue, e.readOnly]), [['num.partitions', '1', true]])

  await assert.rejects(
    admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: uniqueTopic('js-missing') }]
    }),
    (e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION'
  )
})

test('deleteTopicRecords moves the earliest offset', async () => {
  const topic = uniqueTopic('js-trim')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  const kafka = new Kafka({ clientId: 'vltava-compat-kafkajs-trim', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING })
  const producer = kafka.producer()
  await producer.connect()
  for (let i = 0; i < 6; i++) {
    await producer.send({ topic, messages: [{ value: `v${i}` }] })
  }
  await producer.disconnect()
  // kafkajs looks the leader up in metadata it already has (as it must against Kafka too).
  await admin.fetchTopicOffsets(topic)
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
  const [p] = await admin.fetchTopicOffsets(topic)
  assert.deepEqual([p.low, p.high], ['4', '6'])
  await assert.rejects(
    admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '7' }] }),
    // kafkajs wraps the partition's broker error (OFFSET_OUT_OF_RANGE) in its retrier's error.
    (e) => require('node:util').inspect(e, { depth: 8 }).includes("type: 'OFFSET_OUT_OF_RANGE'")
  )
})

test('createPartitions and alterConfigs', async () => {
  const topic = uniqueTopic('js-grow')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(topics[0].partitions.length, 3)
  await assert.rejects(
    admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }),
    (e) => e.type === 'INVALID_PARTITIONS'
  )

  // kafkajs sends AlterConfigs, which replaces the topic's whole set of overrides.
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '120000' }] }]
  })
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }]
  })
  assert.deepEqual(resources[0].configEntries.map((e) => [e.configValue, e.isDefault]), [['120000', false]])
  await assert.rejects(
    admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: 'soon' }] }]
    }),
    (e) => e.type === 'INVALID_CONFIG'
  )
})

test('ACL calls get SECURITY_DISABLED, as from Kafka without an authorizer', async () => {
  const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = require('kafkajs')
  const filter = {
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY
  }
  await assert.rejects(admin.describeAcls(filter), (e) => e.type === 'SECURITY_DISABLED')
  await assert.rejects(admin.deleteAcls({ filters: [filter] }), (e) => e.type === 'SECURITY_DISABLED')
})
