// Measures the registry page (run by tests/benches/ui.rs):
//   latency: N registrations written one by one with the `beacon` CLI; the
//            time from each write to its row on the open page, beside the
//            time to an SQS subscriber (`beacon watch`), on the same writes;
//   render:  time from navigation to a page showing every instance and
//            consumer of the registry as it is.
// Env: UI_URL, BEACON_BIN, plus the stack's variables. Prints Markdown.
import { createRequire } from 'node:module'
import { execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import readline from 'node:readline'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(path.join(root, '.beacon/tools/package.json'))
const { chromium } = require('playwright-core')
const url = process.env.UI_URL
const phase = process.argv[2]
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))] }
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'] })
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  if (phase === 'latency') {
    const n = Number(process.env.BENCH_UI_CHANGES || 200)
    await page.goto(url)
    await page.waitForSelector('.status.live', { timeout: 10000 })
    // The page stamps each new row when it appears (browser and this
    // script share the machine's clock).
    await page.evaluate(() => {
      window.seenAt = {}
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('[data-instance^="uibench/"]')) {
          const id = row.dataset.instance.split('/')[2]
          if (!(id in window.seenAt)) window.seenAt[id] = Date.now()
        }
      }).observe(document.body, { childList: true, subtree: true })
    })
    const watch = spawn(process.env.BEACON_BIN, ['watch', '--json', '--service', 'uibench', '--kind', 'registered', '--count', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] })
    const sqsAt = {}
    readline.createInterface({ input: watch.stdout }).on('line', (line) => {
      try { const e = JSON.parse(line); sqsAt[e.instance_id] = Date.now() } catch {}
    })
    await new Promise((r) => setTimeout(r, 2000)) // the watch queue subscribes
    const writtenAt = {}
    for (let i = 0; i < n; i++) {
      const id = `i${i}`
      writtenAt[id] = Date.now()
      execFileSync(process.env.BEACON_BIN, ['register', 'uibench', '1.0.0', '--endpoint', 'https://b.example', '--instance', id], { stdio: 'ignore' })
      await new Promise((r) => setTimeout(r, 20))
    }
    const deadline = Date.now() + 30000
    let pageAt = {}
    while (Date.now() < deadline) {
      pageAt = await page.evaluate(() => window.seenAt)
      if (Object.keys(pageAt).length >= n && Object.keys(sqsAt).length >= n) break
      await new Promise((r) => setTimeout(r, 200))
    }
    watch.kill()
    const toPage = Object.keys(writtenAt).filter((k) => k in pageAt).map((k) => pageAt[k] - writtenAt[k])
    const toSqs = Object.keys(writtenAt).filter((k) => k in sqsAt).map((k) => sqsAt[k] - writtenAt[k])
    console.log(`## The registry page (\`benches/ui.rs\`, ${n} registrations, one every ~20 ms plus the CLI's start)\n`)
    console.log('| path | n | p50 ms | p99 ms | max ms |')
    console.log('|---|---|---|---|---|')
    for (const [name, xs] of [['write → row on the open page', toPage], ['write → SQS subscriber (`beacon watch`)', toSqs]]) {
      console.log(`| ${name} | ${xs.length} | ${pct(xs, 0.5)} | ${pct(xs, 0.99)} | ${Math.max(...xs)} |`)
    }
  } else {
    const instances = Number(process.env.BENCH_UI_INSTANCES || 1000)
    const consumers = Number(process.env.BENCH_UI_CONSUMERS || 1000)
    const times = []
    for (let k = 0; k < 3; k++) {
      const start = Date.now()
      await page.goto(url)
      await page.waitForFunction(([i, c]) => document.querySelectorAll('[data-instance]').length >= i
        && document.querySelectorAll('[data-consumer]').length >= c, [instances, consumers], { timeout: 120000, polling: 100 })
      times.push(Date.now() - start)
    }
    console.log(`\n| first render, ${instances} instances and ${consumers} consumers (3 loads) | median ${pct(times, 0.5)} ms (min ${Math.min(...times)}, max ${Math.max(...times)}) |`)
    console.log('|---|---|')
  }
} finally {
  await browser.close()
}
