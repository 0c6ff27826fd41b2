'use strict'
// Spawns the vltava broker for a test. Readiness = the broker's output line
// "accepting connections addr=HOST:PORT"; the address is taken from it.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')

const REPO = path.resolve(__dirname, '..', '..', '..')
const READY_RE = /accepting connections.*?addr=["']?([^\s"',]+:\d+)/
const ANSI_RE = /\x1b\[[0-9;]*[A-Za-z]/g // eslint-disable-line no-control-regex
const READY_TIMEOUT_MS = 60_000

function brokerBin () {
  return process.env.VLTAVA_BIN || path.join(REPO, 'target', 'debug', 'vltava')
}

async function startBroker ({ flushAlways = false, extraArgs = [] } = {}) {
  const bin = brokerBin()
  if (!fs.existsSync(bin)) throw new Error(`broker binary ${bin} missing: run cargo build or set VLTAVA_BIN`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vltava-js-'))
  const args = ['--listen', '127.0.0.1:0', '--data-dir', path.join(tmp, 'data')]
  if (flushAlways) args.push('--flush', 'always')
  args.push(...extraArgs)
  const child = spawn(bin, args, {
    env: { ...process.env, RUST_LOG: process.env.VLTAVA_TEST_RUST_LOG || 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs = []
  const watchers = new Set()
  const remember = line => {
    logs.push(line)
    if (logs.length > 400) logs.shift()
    for (const w of watchers) {
      if (w.re.test(line)) {
        watchers.delete(w)
        w.resolve(line)
      }
    }
  }
  readline.createInterface({ input: child.stderr }).on('line', l => remember(l.replace(ANSI_RE, '')))
  const rl = readline.createInterface({ input: child.stdout })

  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`no readiness line within ${READY_TIMEOUT_MS} ms\n${logs.join('\n')}`))
    }, READY_TIMEOUT_MS)
    let found = false
    rl.on('line', raw => {
      const line = raw.replace(ANSI_RE, '')
      remember(line)
      const m = !found && READY_RE.exec(line)
      if (m) {
        found = true
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.on('exit', (code, signal) => {
      if (!found) {
        clearTimeout(timer)
        reject(new Error(`broker exited (${code ?? signal}) before it was ready\n${logs.join('\n')}`))
      }
    })
    child.on('error', err => {
      clearTimeout(timer)
      reject(err)
    })
  })

  return {
    bootstrap: addr,
    logs: () => logs.join('\n'),
    // A promise of the next output line matching `re` (register it before the action it reports on),
    // rejected after `timeoutMs`.
    nextLine (re, timeoutMs) {
      let w
      const line = new Promise((resolve, reject) => {
        w = { re, resolve }
        watchers.add(w)
        setTimeout(() => {
          if (watchers.delete(w)) reject(new Error(`no line matching ${re} within ${timeoutMs} ms`))
        }, timeoutMs).unref()
      })
      return line
    },
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise(resolve => child.once('exit', resolve))
        child.kill('SIGKILL')
        await exited
      }
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  }
}

let seq = 0
function uniqueTopic (prefix) {
  seq += 1
  return `${prefix}-${process.pid}-${seq}-${Date.now().toString(36)}`
}

module.exports = { startBroker, uniqueTopic, brokerBin }
