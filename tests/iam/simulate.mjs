// Evaluates IAM requests with @cloud-copilot/iam-simulate (npm, AGPL: a
// test-time tool, installed by scripts/bootstrap into .beacon/tools and
// never shipped). Reads a JSON array of cases on stdin:
//   { name, principal, action, resource, account, context,
//     identityPolicies: [policy...], resourcePolicy?: policy,
//     scps?: [policy...], rcps?: [policy...] }
// `account` is the resource's account; a principal of another account makes
// the request cross-account (both its identity policies and the resource
// policy must allow it). `scps` apply to the principal's account, beside
// AWS's default FullAWSAccess, as an Organization attaches them; `rcps`
// apply to the resource's account (denies only, as an RCP holds).
// As AWS does, a request by an IAM role or user carries aws:PrincipalArn
// (the role's ARN) and aws:PrincipalAccount unless the case sets them: the
// topic's and queues' explicit denies name principals by aws:PrincipalArn.
// and prints one line of JSON: [{ name, result }] where result is
// "Allowed", "ExplicitlyDenied", "ImplicitlyDenied", or "error: ..." when
// the simulator refused the input (a malformed policy, an unknown action).
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(path.join(root, '.beacon/tools/package.json'))
const { runSimulation } = require('@cloud-copilot/iam-simulate')

const cases = JSON.parse(readFileSync(0, 'utf8'))
const out = []
for (const c of cases) {
  const context = { ...(c.context || {}) }
  const iam = /^arn:aws[a-z-]*:iam::(\d{12}):(role|user)\//.exec(c.principal || '')
  if (iam) {
    if (!('aws:PrincipalArn' in context)) context['aws:PrincipalArn'] = c.principal
    if (!('aws:PrincipalAccount' in context)) context['aws:PrincipalAccount'] = iam[1]
  }
  const simulation = {
    identityPolicies: (c.identityPolicies || []).map((policy, i) => ({ name: `p${i}`, policy })),
    serviceControlPolicies: c.scps
      ? [{
          orgIdentifier: 'r-root',
          policies: [
            { name: 'FullAWSAccess', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } },
            ...c.scps.map((policy, i) => ({ name: `scp${i}`, policy }))
          ]
        }]
      : [],
    resourceControlPolicies: c.rcps
      ? [{
          orgIdentifier: 'r-root',
          // AWS's RCPFullAWSAccess allows all; the simulator takes only
          // the denies an RCP may hold, and allows what none denies.
          policies: c.rcps.map((policy, i) => ({ name: `rcp${i}`, policy }))
        }]
      : [],
    request: {
      principal: c.principal,
      action: c.action,
      resource: { resource: c.resource, accountId: c.account || '123456789012' },
      contextVariables: context
    }
  }
  if (c.resourcePolicy) simulation.resourcePolicy = c.resourcePolicy
  const r = await runSimulation(simulation, {})
  const result = r.resultType === 'error' ? `error: ${r.errors?.message || JSON.stringify(r.errors)}` : r.overallResult
  out.push({ name: c.name, result })
}
process.stdout.write(JSON.stringify(out) + '\n')
