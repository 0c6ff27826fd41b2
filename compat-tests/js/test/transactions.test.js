'use strict'
// kafkajs 2.2.4 transactions against vltava: a transactional producer ({ transactionalId,
// idempotent: true, maxInFlightRequests: 1 }) commits and aborts as read_committed
// (readUncommitted: false) and read_uncommitted consumers see them (exact records at exact offsets,
// each control marker taking an offset); an open transaction holds the last stable offset (a
// read_committed consumer stops below it, and one starting at "latest" starts at it); a second
// producer with the same transactionalId fences the first; sendOffsets; a producer SIGKILLed
// mid-transaction is aborted after its transaction timeout.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { Kafka, logLevel, Partitioners } = require('kafkajs')
const { startBroker, uniqueTopic } = require('../lib/broker')

const TIMEOUT = 60_000
let broker
let kafka
let admin

before(async () => {
  // Timed-out transactions are looked for every 200 ms; groups start without the initial delay.
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-txn-')), 'vltava.toml')
  fs.writeFileSync(cfg, 'group_initial_rebalance_delay_ms = 0\n' +
    'transaction_abort_timed_out_transaction_cleanup_interval_ms = 200\n')
  broker = await startBroker({ extraArgs: ['--config', cfg] })
  kafka = new Kafka({
    clientId: 'vltava-compat-kafkajs-txn',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    requestTimeout: 30_000,
    retry: { retries: 8 }
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (admin) await admin.disconnect()
  if (broker) await broker.stop()
})

async function withLogs (fn) {
  try {
    return await fn()
  } catch (e) {
    e.message += `\n--- last broker output ---\n${broker.logs().split('\n').slice(-40).join('\n')}`
    throw e
  }
}

/** Waiters on conditions over test state; callbacks call notify() when state changes. */
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
function until (cond, what, ms = TIMEOUT) {
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

const values = (tag, n) => Array.from({ length: n }, (_, i) => `${tag}-${i}`)
const at = (first, vals) => vals.map((v, i) => [first + i, v])

async function createTopic (topic, numPartitions = 1) {
  await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true })
}

async function txnProducer (transactionalId, transactionTimeout = 60_000) {
  const p = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout
  })
  await p.connect()
  return p
}

async function plainProducer () {
  const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: false })
  await p.connect()
  return p
}

/** Sends `vals` to `partition` through a producer or transaction; returns their offsets. */
async function send (sender, topic, partition, vals) {
  const res = await sender.send({ topic, acks: -1, messages: vals.map(value => ({ partition, value })) })
  const base = Number(res.find(r => r.partition === partition).baseOffset)
  return vals.map((_, i) => base + i)
}

/** A consumer of a fresh group reading `topic`; records land in `got[partition]` as [offset, value]. */
async function reader (topic, { readUncommitted = false, fromBeginning = true, seek, fetchBytes } = {}) {
  const c = kafka.consumer({
    groupId: uniqueTopic('js-txn-g'),
    readUncommitted,
    ...(fetchBytes ? { maxBytesPerPartition: fetchBytes, maxBytes: fetchBytes } : {}),
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 500
  })
  const r = { c, got: {}, fetches: 0 }
  c.on(c.events.FETCH, () => { r.fetches += 1; notify() })
  await c.connect()
  await c.subscribe({ topic, fromBeginning })
  await c.run({
    eachMessage: async ({ partition, message }) => {
      const rec = [Number(message.offset), message.value.toString()]
      ;(r.got[partition] ||= []).push(rec)
      notify()
    }
  })
  if (seek) c.seek({ topic, partition: 0, offset: String(seek) })
  r.seen = (p, offset) => (r.got[p] || []).some(([o]) => o === offset)
  /** Waits until each partition's record at `last[p]` arrived, then disconnects. */
  r.readTo = async last => {
    await until(() => Object.entries(last).every(([p, o]) => r.seen(Number(p), o)),
      () => `not at ${JSON.stringify(last)}: ${JSON.stringify(r.got)}`)
    await c.disconnect()
    return r.got
  }
  return r
}

async function readAll (topic, last, opts) {
  return (await reader(topic, opts)).readTo(last)
}

test('a committed transaction over two partitions is read by both isolation levels', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-commit')
  await createTopic(topic, 2)
  const p = await txnProducer(uniqueTopic('tid'))
  const txn = await p.transaction()
  const [a, b] = [values('p0', 6), values('p1', 4)]
  assert.deepEqual(await send(txn, topic, 0, a), [0, 1, 2, 3, 4, 5])
  assert.deepEqual(await send(txn, topic, 1, b), [0, 1, 2, 3])
  await txn.commit()
  await p.disconnect()
  for (const readUncommitted of [false, true]) {
    assert.deepEqual(await readAll(topic, { 0: 5, 1: 3 }, { readUncommitted }), { 0: at(0, a), 1: at(0, b) })
  }
}))

test('an aborted transaction is hidden from read_committed only', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-abort')
  await createTopic(topic)
  const p = await txnProducer(uniqueTopic('tid'))
  const [aborted, committed] = [values('aborted', 5), values('committed', 3)]
  const t1 = await p.transaction()
  assert.deepEqual(await send(t1, topic, 0, aborted), [0, 1, 2, 3, 4])
  await t1.abort()
  const t2 = await p.transaction() // the abort marker is at 5
  assert.deepEqual(await send(t2, topic, 0, committed), [6, 7, 8])
  await t2.commit()
  await p.disconnect()
  assert.deepEqual(await readAll(topic, { 0: 8 }), { 0: at(6, committed) })
  assert.deepEqual(await readAll(topic, { 0: 8 }, { readUncommitted: true }),
    { 0: [...at(0, aborted), ...at(6, committed)] })
}))

test('an open transaction holds the last stable offset', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-lso')
  await createTopic(topic)
  const plain = await plainProducer()
  const [before, inside, after] = [values('before', 3), values('inside', 5), values('after', 2)]
  assert.deepEqual(await send(plain, topic, 0, before), [0, 1, 2])
  const p = await txnProducer(uniqueTopic('tid'))
  const txn = await p.transaction()
  assert.deepEqual(await send(txn, topic, 0, inside), [3, 4, 5, 6, 7])
  assert.deepEqual(await send(plain, topic, 0, after), [8, 9])

  // From the beginning: the records below the LSO, then nothing more over several fetches.
  const full = await reader(topic)
  await until(() => full.seen(0, 2), () => JSON.stringify(full.got))
  const fetched = full.fetches
  await until(() => full.fetches >= fetched + 3, () => `${full.fetches} fetches`)
  assert.deepEqual(full.got, { 0: at(0, before) }, 'read_committed while open')
  // From "latest": a read_committed consumer starts at the LSO (3), not the high watermark (10).
  const latest = await reader(topic, { fromBeginning: false })
  await until(() => latest.fetches >= 3, () => `${latest.fetches} fetches`)
  assert.deepEqual(latest.got, {})

  await txn.commit()
  await p.disconnect()
  await plain.disconnect()
  assert.deepEqual(await full.readTo({ 0: 9 }), { 0: [...at(0, before), ...at(3, inside), ...at(8, after)] })
  assert.deepEqual(await latest.readTo({ 0: 9 }), { 0: [...at(3, inside), ...at(8, after)] })
}))

test('interleaved transactions of two producers on one partition', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-interleaved')
  await createTopic(topic)
  const [a, b, plain] = [await txnProducer(uniqueTopic('tid-a')), await txnProducer(uniqueTopic('tid-b')), await plainProducer()]
  const [ta, tb] = [await a.transaction(), await b.transaction()]
  const [a1, b1, x, a2, b2] = [values('a1', 2), values('b1', 2), values('x', 1), values('a2', 2), values('b2', 2)]
  assert.deepEqual(await send(ta, topic, 0, a1), [0, 1])
  assert.deepEqual(await send(tb, topic, 0, b1), [2, 3])
  assert.deepEqual(await send(plain, topic, 0, x), [4])
  assert.deepEqual(await send(ta, topic, 0, a2), [5, 6])
  assert.deepEqual(await send(tb, topic, 0, b2), [7, 8])
  await ta.abort() // marker at 9
  await tb.commit() // marker at 10
  await Promise.all([a.disconnect(), b.disconnect(), plain.disconnect()])
  const committed = [...at(2, b1), ...at(4, x), ...at(7, b2)]
  assert.deepEqual(await readAll(topic, { 0: 8 }), { 0: committed })
  // From inside the aborted transaction (past its first offset): its records at 5..6 stay hidden.
  for (const seek of [1, 2, 5, 6]) {
    assert.deepEqual(await readAll(topic, { 0: 8 }, { seek }), { 0: committed.filter(([o]) => o >= seek) }, `from ${seek}`)
  }
  assert.deepEqual(await readAll(topic, { 0: 8 }, { readUncommitted: true }),
    { 0: [...at(0, a1), ...at(2, b1), ...at(4, x), ...at(5, a2), ...at(7, b2)] })
}))

test('large transactions read in small fetches', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-large')
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'segment.bytes', value: '16384' }] }], waitForLeaders: true })
  const p = await txnProducer(uniqueTopic('tid'))
  const batches = async (txn, tag, n) => {
    const out = []
    for (let first = 0; first < n; first += 100) {
      const vals = Array.from({ length: Math.min(100, n - first) }, (_, i) => `${tag}-${first + i}-${'p'.repeat(40)}`)
      const offs = await send(txn, topic, 0, vals)
      out.push(...offs.map((o, i) => [o, vals[i]]))
    }
    return out
  }
  let txn = await p.transaction()
  const aborted1 = await batches(txn, 'a1', 1200)
  await txn.abort()
  txn = await p.transaction()
  const committed1 = await batches(txn, 'c1', 1200)
  await txn.commit()
  const plain = await plainProducer()
  const [plainOff] = await send(plain, topic, 0, ['plain'])
  await plain.disconnect()
  txn = await p.transaction()
  const aborted2 = await batches(txn, 'a2', 300)
  await txn.abort()
  txn = await p.transaction()
  const committed2 = await batches(txn, 'c2', 10)
  await txn.commit()
  await p.disconnect()
  const last = committed2[committed2.length - 1][0]
  const expected = [...committed1, [plainOff, 'plain'], ...committed2]
  const everything = [...aborted1, ...committed1, [plainOff, 'plain'], ...aborted2, ...committed2]
  for (const [readUncommitted, want] of [[false, expected], [true, everything]]) {
    for (const seek of [0, 700]) {
      const got = (await readAll(topic, { 0: last }, { readUncommitted, seek, fetchBytes: 2048 }))[0]
      const wantFrom = want.filter(([o]) => o >= seek)
      assert.equal(got.length, wantFrom.length, `readUncommitted=${readUncommitted} from ${seek}`)
      assert.deepEqual(got, wantFrom)
    }
  }
}))

test('a second producer with the same transactionalId fences the first', () => withLogs(async () => {
  const topic = uniqueTopic('js-txn-fence')
  await createTopic(topic)
  const id = uniqueTopic('tid')
  const first = await txnProducer(id)
  const t1 = await first.transaction()
  assert.deepEqual(await send(t1, topic, 0, values('zombie', 4)), [0, 1, 2, 3])
  // kafkajs sends InitProducerId with the transactionalId from its first transaction(): the epoch is
  // bumped and the first producer's transaction aborted.
  const second = await txnProducer(id)
  const t2 = await second.transaction()
  // The zombie's next record (its partition already in the transaction) carries the old epoch.
  await assert.rejects(send(t1, topic, 0, ['late']), e => {
    assert.match(`${e.type} ${e.message}`, /INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|old epoch|fenced/i)
    return true
  })
  await assert.rejects(t1.commit(), e => {
    const type = e.type || (e.cause && e.cause.type)
    assert.ok(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED'].includes(type), `not a fencing error: ${e.name} ${type} ${e.message}`)
    return true
  })
  await first.disconnect()
  const good = values('good', 3)
  assert.deepEqual(await send(t2, topic, 0, good), [5, 6, 7]) // abort marker at 4
  await t2.commit()
  await second.disconnect()
  assert.deepEqual(await readAll(topic, { 0: 7 }), { 0: at(5, good) })
  assert.deepEqual(await readAll(topic, { 0: 7 }, { readUncommitted: true }), { 0: [...at(0, values('zombie', 4)), ...at(5, good)] })
}))

test('sendOffsets commits a group\'s offsets with the transaction',
  () => withLogs(async () => {
    const [input, output] = [uniqueTopic('js-txn-in'), uniqueTopic('js-txn-out')]
    await createTopic(input)
    await createTopic(output)
    const inputs = values('in', 10)
    const plain = await plainProducer()
    await send(plain, input, 0, inputs)
    await plain.disconnect()
    const groupId = uniqueTopic('js-txn-group')
    const member = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 100, heartbeatInterval: 500 })
    const seen = []
    await member.connect()
    await member.subscribe({ topic: input, fromBeginning: true })
    await member.run({ autoCommit: false, eachMessage: async ({ message }) => { seen.push(message.value.toString()); notify() } })
    try {
      await until(() => seen.length >= 10, () => JSON.stringify(seen))
      assert.deepEqual(seen, inputs)
      const outputs = inputs.map(v => `out-${v}`)
      const offsets = { consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '10' }] }] }
      // With `until`, asks again (round trips, TIMEOUT bound): the commit's markers, the one on
      // __consumer_offsets included, follow EndTxn's answer, and kafkajs' OffsetFetch is not require_stable.
      const committedOffset = async until => {
        const end = Date.now() + TIMEOUT
        for (;;) {
          const got = (await admin.fetchOffsets({ groupId, topics: [input] }))[0].partitions[0].offset
          if (until === undefined || got === until || Date.now() > end) return got
        }
      }
      const p = await txnProducer(uniqueTopic('tid'))
      const t1 = await p.transaction() // aborted: neither the outputs nor the offsets count
      await send(t1, output, 0, outputs.slice(0, 5))
      await t1.sendOffsets(offsets)
      await t1.abort()
      assert.equal(await committedOffset(), '-1', 'after the abort')
      const t2 = await p.transaction() // outputs at 6..15 (abort marker at 5), the group at 10
      assert.deepEqual(await send(t2, output, 0, outputs), Array.from({ length: 10 }, (_, i) => 6 + i))
      await t2.sendOffsets(offsets)
      await t2.commit()
      await p.disconnect()
      assert.equal(await committedOffset('10'), '10', 'after the commit')
      assert.deepEqual(await readAll(output, { 0: 15 }), { 0: at(6, outputs) })
    } finally {
      await member.disconnect()
    }
  }))

test('a producer killed mid-transaction is aborted after its timeout', () => withLogs(async () => {
  const txnTimeoutMs = 3000
  const topic = uniqueTopic('js-txn-killed')
  await createTopic(topic)
  const id = uniqueTopic('tid')
  const spawned = Date.now()
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'lib', 'txn-child.js'),
    broker.bootstrap, id, topic, '5', String(txnTimeoutMs)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise(resolve => child.once('exit', resolve))
  const after = values('after', 3)
  try {
    const line = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no `produced` line from the child')), TIMEOUT)
      readline.createInterface({ input: child.stdout }).once('line', l => { clearTimeout(timer); resolve(l) })
      child.once('exit', code => reject(new Error(`child exited (${code})`)))
    })
    assert.equal(line, 'produced 0 4')
    const plain = await plainProducer()
    assert.deepEqual(await send(plain, topic, 0, after), [5, 6, 7])
    await plain.disconnect()
  } finally {
    child.kill('SIGKILL')
    await exited
  }
  // Aborted by the coordinator after its timeout (marker at 8): read_committed gets only the later records.
  assert.deepEqual(await readAll(topic, { 0: 7 }), { 0: at(5, after) })
  const visible = Date.now() - spawned
  assert.ok(visible >= txnTimeoutMs, `the LSO moved after ${visible} ms, before the transaction's timeout`)
  assert.deepEqual(await readAll(topic, { 0: 7 }, { readUncommitted: true }),
    { 0: [...at(0, values('dead', 5)), ...at(5, after)] })
  // The id is usable again.
  const p = await txnProducer(id)
  const txn = await p.transaction()
  const again = values('again', 2)
  assert.deepEqual(await send(txn, topic, 0, again), [9, 10])
  await txn.commit()
  await p.disconnect()
  assert.deepEqual(await readAll(topic, { 0: 10 }), { 0: [...at(5, after), ...at(9, again)] })
}))
