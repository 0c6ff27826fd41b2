'use strict'
// A local vltava cluster of real processes for the kafkajs cluster test: node N listens on 127.0.0.N
// (a Kafka and a controller listener on ports free on that address), configured by a Kafka KRaft
// server.properties file like compat-tests/src/cluster.rs; every node is a broker and a metadata
// voter. Nodes start together; each is ready at its "accepting connections addr=" line, the cluster
// once every node's Metadata lists every broker.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { Kafka, logLevel } = require('kafkajs')
const { brokerBin } = require('./broker')

const READY_RE = /accepting connections.*?addr=["']?([^\s"',]+:\d+)/
const ANSI_RE = /\x1b\[[0-9;]*[A-Za-z]/g // eslint-disable-line no-control-regex
const READY_TIMEOUT_MS = 60_000
// Below Linux's ephemeral range, so no client connection takes the port before the node binds it.
const PORT_MIN = 20_000
const PORT_MAX = 32_767
const PROPERTIES = {
  'broker.heartbeat.interval.ms': '500',
  'broker.session.timeout.ms': '4000',
  'replica.lag.time.max.ms': '3000',
  'group.initial.rebalance.delay.ms': '0',
  'offsets.topic.num.partitions': '3',
  'offsets.topic.replication.factor': '3'
}

function portFree (host, port) {
  return new Promise(resolve => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)))
  })
}

async function freePort (host) {
  for (let i = 0; i < 100; i++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN))
    if (await portFree(host, port)) return port
  }
  throw new Error(`no free port on ${host}`)
}

function spawnNode (node, cwd) {
  const child = spawn(brokerBin(), ['--config', node.properties], {
    cwd,
    env: { ...process.env, RUST_LOG: process.env.VLTAVA_TEST_RUST_LOG || 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  node.child = child
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${node.id}: no readiness line within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS)
    const onLine = raw => {
      const line = raw.replace(ANSI_RE, '')
      node.logs.push(`[node ${node.id}] ${line}`)
      if (node.logs.length > 300) node.logs.shift()
      if (READY_RE.test(line)) {
        clearTimeout(timer)
        resolve()
      }
    }
    readline.createInterface({ input: child.stdout }).on('line', onLine)
    readline.createInterface({ input: child.stderr }).on('line', onLine)
    child.on('exit', code => {
      clearTimeout(timer)
      reject(new Error(`node ${node.id} exited (${code})`))
    })
  })
  return ready
}

async function awaitBrokers (nodes) {
  const want = nodes.map(n => n.id).join(',')
  const until = Date.now() + READY_TIMEOUT_MS
  for (const n of nodes) {
    const admin = new Kafka({ clientId: 'vltava-cluster-probe', brokers: [n.bootstrap], logLevel: logLevel.NOTHING })
      .admin()
    let seen
    try {
      await admin.connect()
      for (;;) {
        try {
          seen = (await admin.describeCluster()).brokers.map(b => b.nodeId).sort().join(',')
        } catch (e) {
          seen = String(e)
        }
        if (seen === want) break
        if (Date.now() > until) throw new Error(`node ${n.id} lists brokers ${seen}, not ${want}`)
        await new Promise(resolve => setTimeout(resolve, 200)) // polling Metadata with a deadline
      }
    } finally {
      await admin.disconnect()
    }
  }
}

async function startCluster (n = 3) {
  const bin = brokerBin()
  if (!fs.existsSync(bin)) throw new Error(`broker binary ${bin} missing: run cargo build or set VLTAVA_BIN`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-cluster-'))
  const nodes = []
  for (let id = 1; id <= n; id++) {
    const ip = `127.0.0.${id}`
    nodes.push({ id, ip, kafkaPort: await freePort(ip), controllerPort: await freePort(ip), logs: [] })
  }
  const voters = nodes.map(s => `${s.id}@${s.ip}:${s.controllerPort}`).join(',')
  for (const s of nodes) {
    s.bootstrap = `${s.ip}:${s.kafkaPort}`
    s.properties = path.join(tmp, `node${s.id}.properties`)
    const props = {
      'process.roles': 'broker,controller',
      'node.id': String(s.id),
      'controller.quorum.voters': voters,
      listeners: `PLAINTEXT://${s.bootstrap},CONTROLLER://${s.ip}:${s.controllerPort}`,
      'advertised.listeners': `PLAINTEXT://${s.bootstrap}`,
      'controller.listener.names': 'CONTROLLER',
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      'inter.broker.listener.name': 'PLAINTEXT',
      'log.dirs': path.join(tmp, `data${s.id}`),
      ...PROPERTIES
    }
    fs.writeFileSync(s.properties, Object.entries(props).map(([k, v]) => `${k}=${v}\n`).join(''))
  }
  const cluster = {
    nodes,
    bootstrap: id => nodes[id - 1].bootstrap,
    logs: () => nodes.map(s => s.logs.join('\n')).join('\n'),
    async stop () {
      for (const s of nodes) {
        const c = s.child
        if (c && c.exitCode === null && c.signalCode === null) {
          const exited = new Promise(resolve => c.once('exit', resolve))
          c.kill('SIGKILL')
          await exited
        }
      }
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  }
  try {
    await Promise.all(nodes.map(s => spawnNode(s, tmp)))
    await awaitBrokers(nodes)
  } catch (e) {
    const logs = cluster.logs()
    await cluster.stop()
    throw new Error(`${e.message}\n${logs}`)
  }
  return cluster
}

module.exports = { startCluster }
