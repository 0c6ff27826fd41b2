'use strict'
// kafkajs 2.2.4 over TLS (SSL, and SASL_SSL with SCRAM-SHA-512): verifies the broker against the
// test CA, produces and consumes; a client that does not trust the CA fails to connect.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Kafka, logLevel } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')
const { roundTrip } = require('../lib/roundtrip')

let broker
let certs

before(async () => {
  certs = fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-certs-'))
  execFileSync('bash', [path.join(__dirname, '..', '..', 'tls', 'make-certs.sh'), certs])
  const cfg = path.join(certs, 'vltava.toml')
  fs.writeFileSync(cfg, [
    'group_initial_rebalance_delay_ms = 0',
    '[tls]',
    `cert_file = "${certs}/server.pem"`,
    `key_file = "${certs}/server.key"`,
    '[sasl]',
    'mechanisms = ["SCRAM-SHA-512"]',
    '[sasl.users]',
    'dave = "dave-secret"',
    ''
  ].join('\n'))
  broker = await startBroker({ extraArgs: ['--config', cfg] })
})

after(async () => {
  if (broker) await broker.stop()
})

function client (ssl) {
  return new Kafka({
    clientId: 'vltava-compat-kafkajs-tls',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    ssl,
    sasl: { mechanism: 'scram-sha-512', username: 'dave', password: 'dave-secret' }
  })
}

test('SASL_SSL: produce and read back', async () => {
  const kafka = client({ ca: [fs.readFileSync(path.join(certs, 'ca.pem'))] })
  const topic = uniqueTopic('js-tls')
  const got = await roundTrip(kafka, topic, ['secret-1', 'secret-2'])
  assert.deepEqual(got, ['secret-1', 'secret-2'])
})

test('a client that does not trust the broker certificate cannot connect', async () => {
  const admin = client({ rejectUnauthorized: true }).admin()
  await assert.rejects(admin.connect(), (e) => /certificate|self.signed|unable to verify/i.test(String(e.message)))
})
