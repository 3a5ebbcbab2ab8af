// The registry page in a real browser: headless Chromium (Debian's
// `chromium`) driven by playwright-core, both installed by
// `scripts/bootstrap --browser`. Run by cli/tests/ui.rs, which starts the
// local pipeline and `beacon ui`; this script makes real writes with the
// `beacon` CLI and the AWS CLI and checks what the page shows.
//
// Env: UI_URL, BEACON_BIN, AWS_CLI, SCREENSHOT_DIR, plus the local stack's
// BEACON_TABLE / BEACON_TOPIC_ARN / AWS_* variables for the writers.
// Prints one JSON line of measurements; exits non-zero on the first failed
// check, naming it.
import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { mkdirSync } from 'node:fs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(path.join(root, '.beacon/tools/package.json'))
const { chromium } = require('playwright-core')

const url = process.env.UI_URL
const beacon = (...args) => execFileSync(process.env.BEACON_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString()
const shots = process.env.SCREENSHOT_DIR
mkdirSync(shots, { recursive: true })
const measured = {}

function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`)
    process.exit(1)
  }
}

// Waits for `selector` to reach `state` and returns the milliseconds since
// `since`; a timeout fails the check named `what`.
async function within(page, selector, state, timeout, since, what) {
  try {
    await page.waitForSelector(selector, { state, timeout })
  } catch {
    check(false, `${what}: ${selector} not ${state} within ${timeout} ms`)
  }
  return Date.now() - since
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
})
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(url)
  await page.waitForSelector('.status.live', { timeout: 10000 })

  // An empty registry explains how to register.
  check(await page.isVisible('#empty'), 'the empty registry is explained')
  check((await page.textContent('#empty')).includes('beacon register'), 'the explanation says how to register')
  await page.screenshot({ path: path.join(shots, 'ui-empty.png'), fullPage: true })

  // A registration appears without a reload, within 2 s.
  let t = Date.now()
  beacon('register', 'orders', '1.2.0', '--endpoint', 'https://orders.example', '--instance', 'i-1', '--attr', 'zone=a')
  measured.appear_ms = await within(page, '[data-instance="orders/1.2.0/i-1"]', 'attached', 2000, t, 'a registration appears')
  check(await page.isHidden('#empty'), 'the explanation goes once something is registered')

  // A consumer's unresolved need shows in the graph, and turns resolved
  // when the service registers.
  beacon('needs', 'web', 'orders', 'payments==1.2.0')
  await within(page, '[data-edge="web->payments"][data-state="unresolved"]', 'attached', 5000, Date.now(), 'an unresolved need shows')
  await within(page, '[data-edge="web->orders"][data-state="resolved"]', 'attached', 5000, Date.now(), 'a resolved need shows')
  await page.screenshot({ path: path.join(shots, 'ui-unresolved.png'), fullPage: true })
  t = Date.now()
  beacon('register', 'payments', '1.2.0', '--endpoint', 'https://payments.example')
  measured.resolve_ms = await within(page, '[data-edge="web->payments"][data-state="resolved"]', 'attached', 5000, t, 'the need turns resolved')
  await page.click('[data-node="service:payments"]')
  check((await page.textContent('#details')).includes('https://payments.example'), 'a selected node shows its details')
  await page.screenshot({ path: path.join(shots, 'ui-registry.png'), fullPage: true })

  // Each change once in the feed, under its event_id, even delivered twice.
  const event = await page.evaluate(() => window.beaconUi.state.feed.find((e) => e.kind === 'registered' && e.service === 'payments'))
  check(event && event.event_id, 'the feed holds the registration event')
  for (let i = 0; i < 2; i++) {
    execFileSync(process.env.AWS_CLI, ['sns', 'publish', '--endpoint-url', process.env.AWS_ENDPOINT_URL_SNS,
      '--topic-arn', process.env.BEACON_TOPIC_ARN, '--message', JSON.stringify(event)], { stdio: 'ignore' })
  }
  await page.waitForTimeout(1500)
  const copies = await page.locator(`#feed [data-event-id="${event.event_id}"]`).count()
  check(copies === 1, `one feed entry per event_id (saw ${copies})`)
  await page.selectOption('#filter-kind', 'resolved')
  const kinds = await page.$$eval('#feed li', (lis) => [...new Set(lis.map((li) => li.dataset.kind))])
  check(kinds.length === 1 && kinds[0] === 'resolved', `the kind filter shows only resolved events (saw ${kinds})`)
  await page.selectOption('#filter-kind', '')
  await page.selectOption('#filter-service', 'orders')
  const services = await page.$$eval('#feed li', (lis) => lis.length)
  check(services >= 1, 'the service filter keeps orders events')

  // The event connection dies; a change lands meanwhile; the page
  // reconnects and catches up from a fresh snapshot.
  await page.route('**/events', (r) => r.abort())
  await page.evaluate(() => window.beaconUi.killConnection())
  await page.waitForSelector('.status.down', { timeout: 5000 })
  beacon('deregister', 'orders', '1.2.0', '--instance', 'i-1')
  await page.waitForTimeout(1500)
  check(await page.isVisible('[data-instance="orders/1.2.0/i-1"]'), 'while disconnected the page cannot know (sanity)')
  t = Date.now()
  await page.unroute('**/events')
  measured.catch_up_ms = await within(page, '[data-instance="orders/1.2.0/i-1"]', 'detached', 10000, t, 'the page catches up after reconnecting')
  await page.waitForSelector('.status.live', { timeout: 5000 })

  // A removal disappears within 2 s.
  t = Date.now()
  beacon('deregister', 'payments', '1.2.0')
  measured.disappear_ms = await within(page, '[data-instance="payments/1.2.0/default"]', 'detached', 2000, t, 'a removal disappears')

  // Bad input gets a clear 4xx, and the server keeps serving.
  const status = async (u, init) => (await fetch(u, init)).status
  check(await status(`${url}no/such/page`) === 404, 'an unknown path is 404')
  check(await status(`${url}api/snapshot?${'x'.repeat(5000)}`) === 414, 'a huge query is 414')
  check(await status(`${url}api/snapshot?a=%zz`) === 400, 'a malformed query is 400')
  check(await status(url, { method: 'POST' }) === 405, 'a write is 405')
  const bad = await (await fetch(`${url}nope`)).json()
  check(typeof bad.error === 'string' && bad.error.includes('/nope'), 'a 4xx names what was wrong')
  check(await status(url) === 200, 'the server keeps serving')
  await page.reload()
  await page.waitForSelector('.status.live', { timeout: 10000 })

  // Usable at 200 % zoom on a laptop screen: nothing wider than the window.
  const zoomed = await browser.newContext({ viewport: { width: 683, height: 384 }, deviceScaleFactor: 2 })
  const small = await zoomed.newPage()
  await small.goto(url)
  await small.waitForSelector('.status.live', { timeout: 10000 })
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  check(overflow <= 1, `no horizontal scrolling at 200 % zoom (overflow ${overflow} px)`)
  await small.screenshot({ path: path.join(shots, 'ui-zoom-200.png') })

  check(errors.length === 0, `no script errors on the page: ${errors.join('; ')}`)
  console.log(JSON.stringify(measured))
} finally {
  await browser.close()
}
