'use strict'
// kafkajs 2.2.4 on a SASL listener (SASL_PLAINTEXT): PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
// produce and consume; a wrong password is a SASL authentication error.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Kafka, logLevel } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')
const { roundTrip } = require('../lib/roundtrip')

let broker

before(async () => {
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-sasl-')), 'vltava.toml')
  fs.writeFileSync(cfg, [
    'group_initial_rebalance_delay_ms = 0',
    '[sasl]',
    'mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]',
    '[sasl.users]',
    'carol = "carol-secret"',
    ''
  ].join('\n'))
  broker = await startBroker({ extraArgs: ['--config', cfg] })
})

after(async () => {
  if (broker) await broker.stop()
})

function client (mechanism, password) {
  return new Kafka({
    clientId: 'vltava-compat-kafkajs-sasl',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    sasl: { mechanism, username: 'carol', password }
  })
}

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
  test(`${mechanism}: produce and consume`, async () => {
    const kafka = client(mechanism, 'carol-secret')
    const topic = uniqueTopic(`js-sasl-${mechanism}`)
    const got = await roundTrip(kafka, topic, ['a', 'b'])
    assert.deepEqual(got, ['a', 'b'])
  })
}

test('a wrong password is a SASL authentication error', async () => {
  const admin = client('scram-sha-256', 'wrong').admin()
  await assert.rejects(admin.connect(), (e) => e.name === 'KafkaJSSASLAuthenticationError')
})
