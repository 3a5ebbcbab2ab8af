// The construct deploys what infra/template.yaml deploys. Both templates
// are resolved for one concrete stack (parameters, pseudo parameters,
// conditions; a resource is named by its SAM logical id on both sides:
// CDK's by its construct path, SAM's without the hash SAM appends) and
// compared resource by resource, property by property, and output by
// output. What may differ is listed in KNOWN_DIFFERENCES, each with why;
// anything else that differs fails, naming the resource and the property.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { BeaconProps } from '../lib';
import { beaconStack, HAVE_SAM, REPO, samTemplate } from './util';

/** Properties that differ, by resource type, and why. */
const KNOWN_DIFFERENCES: Record<string, Record<string, string>> = {
  'AWS::Lambda::Function': {
    Code: 'the artifact: an S3 location after `aws cloudformation package` for SAM, a CDK asset here',
    Tags: 'SAM tags what it makes lambda:createdBy=SAM',
  },
  'AWS::IAM::Role': { Tags: 'SAM tags what it makes lambda:createdBy=SAM' },
  'AWS::Lambda::LayerVersion': { Content: 'the artifact, as a function\'s Code' },
  'AWS::ApiGateway::RestApi': {
    Name: 'SAM leaves the name to the document\'s title; the construct names it by that title',
  },
  'AWS::ApiGateway::Deployment': {
    Description: 'SAM writes its hash of the body there; the construct\'s logical id carries its own',
    StageName: 'SAM\'s deployment also makes a stage named "Stage" besides the API\'s stage; the construct makes only the API\'s',
  },
  'AWS::Scheduler::Schedule': {
    Name: 'SAM names the schedule SweeperFunctionEveryMinute in every stack, so two stages in one account and Region collide; CloudFormation names the construct\'s',
  },
  'AWS::Lambda::Permission': {
    FunctionName: 'the same function, by name (SAM) or by ARN (CDK\'s addPermission)',
  },
  'AWS::Lambda::EventInvokeConfig': { DestinationConfig: 'SAM writes an empty one' },
};

interface Env {
  readonly params: Record<string, string>;
  readonly conditions: Record<string, unknown>;
  readonly infra: string;
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'beacon-dev',
};
const NO_VALUE = Symbol('NoValue');

/** SAM's logical ids carry a 10-hex-digit hash on some resources (CatalogApiDeployment6399d0bc96). */
function samName(id: string): string {
  return id.replace(/(?<=[a-z])(?=[0-9a-f]*[0-9])[0-9a-f]{10}$/, '');
}

/** A CDK resource's SAM name, from its construct path under the Beacon. */
function cdkName(cdkPath: string): string | undefined {
  const m = /^beacon-dev\/Beacon\/(.*?)(\/Resource)?$/.exec(cdkPath);
  if (!m) return undefined;
  const segments = m[1].split('/');
  const last = segments[segments.length - 1];
  // A child CDK names generically takes its parent's name (Topic/Policy → TopicPolicy).
  return ['Policy', 'EventInvokeConfig'].includes(last) ? segments.join('') : last;
}

function resolve(v: unknown, env: Env, names: Record<string, string>): unknown {
  if (Array.isArray(v)) return v.map((x) => resolve(x, env, names)).filter((x) => x !== NO_VALUE);
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 1 && (entries[0][0] === 'Ref' || entries[0][0].startsWith('Fn::'))) {
    return intrinsic(entries[0][0], entries[0][1], env, names);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries) {
    const r = resolve(x, env, names);
    if (r !== NO_VALUE) out[k] = r;
  }
  return out;
}

function ref(name: string, env: Env, names: Record<string, string>): unknown {
  if (name === 'AWS::NoValue') return NO_VALUE;
  if (name in PSEUDO) return PSEUDO[name];
  if (name in env.params) return env.params[name];
  return `ref:${names[name] ?? samName(name)}`;
}

function intrinsic(fn: string, arg: any, env: Env, names: Record<string, string>): unknown {
  switch (fn) {
    case 'Ref':
      return ref(arg, env, names);
    case 'Fn::GetAtt': {
      const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
      return `att:${names[id] ?? samName(id)}.${attr}`;
    }
    case 'Fn::Sub': {
      const [text, vars] = Array.isArray(arg) ? arg : [arg, {}];
      return String(text).replace(/\$\{([^}]*)\}/g, (_, name: string) => {
        if (name.startsWith('!')) return `\${${name.slice(1)}}`;
        if (name in vars) return String(resolve(vars[name], env, names));
        if (name.includes('.')) return String(intrinsic('Fn::GetAtt', name, env, names));
        return String(ref(name, env, names));
      });
    }
    case 'Fn::Join':
      return (resolve(arg[1], env, names) as unknown[]).join(arg[0]);
    case 'Fn::If':
      return resolve(condition(arg[0], env) ? arg[1] : arg[2], env, names);
    case 'Fn::Transform': {
      assert.equal(arg.Name, 'AWS::Include');
      const file = path.join(env.infra, arg.Parameters.Location);
      const text = fs.readFileSync(file, 'utf8');
      // The included fragment, parsed as CloudFormation would (JSON, or YAML).
      const fragment = file.endsWith('.json') ? JSON.parse(text) : require('yaml').parse(text);
      return resolve(fragment, env, names);
    }
    default:
      throw new Error(`unhandled intrinsic ${fn}`);
  }
}

function condition(name: string, env: Env): boolean {
  const evaluate = (c: any): unknown => {
    if (typeof c !== 'object' || c === null) return c;
    const [[fn, arg]] = Object.entries(c as Record<string, any>);
    switch (fn) {
      case 'Fn::Equals':
        return String(evaluate(arg[0])) === String(evaluate(arg[1]));
      case 'Fn::Not':
        return !evaluate(arg[0]);
      case 'Fn::And':
        return arg.every((a: unknown) => evaluate(a));
      case 'Fn::Or':
        return arg.some((a: unknown) => evaluate(a));
      case 'Condition':
        return condition(arg, env);
      case 'Ref':
        return ref(arg, env, {});
      default:
        throw new Error(`unhandled condition function ${fn}`);
    }
  };
  if (!(name in env.conditions)) throw new Error(`no condition ${name}`);
  return Boolean(evaluate(env.conditions[name]));
}

const POLICY_KEYS = ['PolicyDocument', 'AssumeRolePolicyDocument'];

/**
 * Equal as CloudFormation and IAM read them: scalars as strings (a Number
 * parameter's Ref is a string), and in a policy document a one-element
 * list is its element, lists of values are sets, statements are a set.
 */
function normalize(v: unknown, inPolicy = false): unknown {
  if (Array.isArray(v)) {
    const items = v.map((x) => normalize(x, inPolicy));
    if (!inPolicy) return items;
    const sorted = items.map((x) => JSON.stringify(x)).sort().map((x) => JSON.parse(x));
    return sorted.length === 1 ? sorted[0] : sorted;
  }
  if (v === null || typeof v !== 'object') return String(v);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v as object).sort()) {
    out[k] = normalize((v as any)[k], inPolicy || POLICY_KEYS.includes(k));
  }
  // A policy without Version is read as 2008-10-17; none here uses policy variables.
  if ('Statement' in out) out.Version ??= '2012-10-17';
  return out;
}

interface Compared {
  readonly sam: Record<string, any>;
  readonly cdk: Record<string, any>;
  readonly samOutputs: Record<string, any>;
  readonly cdkOutputs: Record<string, any>;
}

function compareStacks(props: BeaconProps, params: Record<string, string>): Compared {
  const sam = samTemplate(params);
  const values: Record<string, string> = {};
  for (const [name, p] of Object.entries(sam.Parameters as Record<string, any>)) {
    values[name] = String(params[name] ?? p.Default ?? '');
  }
  const env: Env = { params: values, conditions: sam.Conditions, infra: path.join(REPO, 'infra') };
  const samResources: Record<string, any> = {};
  for (const [id, r] of Object.entries(sam.Resources as Record<string, any>)) {
    if (r.Condition !== undefined && !condition(r.Condition, env)) continue;
    samResources[samName(id)] = resolve(r, env, {});
  }
  const cdkTemplate = Template.fromStack(beaconStack(props).stack).toJSON();
  const names: Record<string, string> = {};
  for (const [id, r] of Object.entries(cdkTemplate.Resources as Record<string, any>)) {
    const name = cdkName(String(r.Metadata?.['aws:cdk:path'] ?? ''));
    if (name !== undefined) names[id] = name;
  }
  const cdkResources: Record<string, any> = {};
  for (const [id, r] of Object.entries(cdkTemplate.Resources as Record<string, any>)) {
    if (names[id] !== undefined) cdkResources[names[id]] = resolve(r, env, names);
  }
  const samOutputs = resolve(sam.Outputs, env, {}) as Record<string, any>;
  const cdkOutputs: Record<string, any> = {};
  for (const [id, o] of Object.entries((cdkTemplate.Outputs ?? {}) as Record<string, any>)) {
    const m = /^Beacon(.*)[0-9A-F]{8}$/.exec(id);
    if (m) cdkOutputs[m[1]] = resolve(o, env, names);
  }
  return { sam: samResources, cdk: cdkResources, samOutputs, cdkOutputs };
}

function differences(c: Compared): string[] {
  const out: string[] = [];
  const ids = new Set([...Object.keys(c.sam), ...Object.keys(c.cdk)]);
  for (const id of [...ids].sort()) {
    const s = c.sam[id];
    const k = c.cdk[id];
    if (s === undefined || k === undefined) {
      out.push(`${id}: only in ${s === undefined ? 'the construct' : 'the SAM template'} (${(s ?? k).Type})`);
      continue;
    }
    if (s.Type !== k.Type) out.push(`${id}: ${s.Type} in SAM, ${k.Type} here`);
    if ((s.DeletionPolicy ?? 'Delete') !== (k.DeletionPolicy ?? 'Delete')) {
      out.push(`${id}: DeletionPolicy ${s.DeletionPolicy} in SAM, ${k.DeletionPolicy} here`);
    }
    const known = KNOWN_DIFFERENCES[s.Type] ?? {};
    const props = new Set([...Object.keys(s.Properties ?? {}), ...Object.keys(k.Properties ?? {})]);
    for (const p of props) {
      if (p in known) continue;
      const policy = POLICY_KEYS.includes(p);
      const a = JSON.stringify(normalize(s.Properties?.[p], policy));
      const b = JSON.stringify(normalize(k.Properties?.[p], policy));
      if (a !== b) out.push(`${id}.${p}:\n  SAM: ${a}\n  CDK: ${b}`);
    }
  }
  const outputs = new Set([...Object.keys(c.samOutputs), ...Object.keys(c.cdkOutputs)]);
  for (const o of outputs) {
    const a = JSON.stringify(normalize(c.samOutputs[o]));
    const b = JSON.stringify(normalize(c.cdkOutputs[o]));
    if (a !== b) out.push(`output ${o}:\n  SAM: ${a}\n  CDK: ${b}`);
  }
  return out;
}

const REPLICA = 'arn:aws:dynamodb:us-east-1:123456789012:table/beacon-dev/stream/2026-11-26T00:00:00.000';
const CASES: Array<{ name: string; props: BeaconProps; params: Record<string, string> }> = [
  { name: 'the defaults', props: {}, params: {} },
  {
    name: 'an Organization, signed reads, no unscoped routes, other numbers',
    props: {
      organizationId: 'o-a1b2c3d4e5',
      signedReads: true,
      unscopedWriteRoutes: false,
      stage: 'prod',
      batchSize: 50,
      parallelizationFactor: 4,
      maximumRetryAttempts: -1,
      refreshConcurrency: 20,
      sweepIntervalMs: 60000,
    },
    params: {
      OrganizationId: 'o-a1b2c3d4e5',
      SignedReads: 'on',
      UnscopedWriteRoutes: 'off',
      Stage: 'prod',
      BatchSize: '50',
      ParallelizationFactor: '4',
      MaximumRetryAttempts: '-1',
      RefreshConcurrency: '20',
      SweepIntervalMs: '60000',
    },
  },
  { name: 'a replica of a global table', props: { replicaStreamArn: REPLICA }, params: { ReplicaStreamArn: REPLICA } },
  { name: 'an EventBridge bus', props: { eventBusName: 'platform' }, params: { EventBusName: 'platform' } },
];

describe('the construct deploys what infra/template.yaml deploys (after AWS\'s SAM transform)', { skip: !HAVE_SAM && 'no .venv: run ./scripts/bootstrap' }, () => {
  for (const c of CASES) {
    it(`${c.name}: the same resources, properties and outputs`, () => {
      const compared = compareStacks(c.props, c.params);
      const types = (rs: Record<string, any>) =>
        Object.values(rs).map((r) => r.Type).sort();
      assert.deepEqual(types(compared.cdk), types(compared.sam), 'resource types and counts');
      const diffs = differences(compared);
      assert.deepEqual(diffs, [], `differences from the SAM template:\n${diffs.join('\n')}`);
    });
  }

  it('the comparison sees a difference (a control)', () => {
    const compared = compareStacks({ batchSize: 99 }, {});
    assert.ok(differences(compared).some((d) => d.startsWith('FanoutStream.BatchSize')));
  });
});
