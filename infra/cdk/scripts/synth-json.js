#!/usr/bin/env node
// Synthesizes a stack with the Beacon construct and prints its CloudFormation
// template as JSON, as tests/iam/sam_transform.py prints the SAM template's:
//
//     node infra/cdk/scripts/synth-json.js [Name=Value ...]
//
// Name=Value are the SAM template's parameters (Stage, OrganizationId,
// SignedReads=on, UnscopedWriteRoutes=off, ReplicaStreamArn, ...), mapped
// to the construct's props. Besides the registry, the stack holds one
// principal per grant helper: a role `Writer` (grantRegister "orders"), a
// role `Viewer` (grantView) and a function `Web` (addConsumer, consumer
// "web"), for tests/tests/iam/cdk.rs to compare with infra/policies/.
// Offline: no account, no lookups; the Lambda artifacts may be missing
// (placeholders). Needs the compiled library: (cd infra/cdk && npx tsc).
'use strict';
// aws-cdk-lib's own CloudFormation validation at synth (5 s a synth here)
// runs where the example app is synthesized by the CLI (scripts/check).
process.env.CDK_VALIDATION = 'false';
const fs = require('fs');
const os = require('os');
const path = require('path');
const cdk = require('aws-cdk-lib');
const iam = require('aws-cdk-lib/aws-iam');
const lambda = require('aws-cdk-lib/aws-lambda');
const { Beacon } = require('../dist/lib');

const params = Object.fromEntries(process.argv.slice(2).map((a) => a.split(/=(.*)/s).slice(0, 2)));
const onOff = (name) => (params[name] === undefined ? undefined : params[name] === 'on');
const number = (name) => (params[name] === undefined ? undefined : Number(params[name]));
const props = {
  stage: params.Stage,
  parallelizationFactor: number('ParallelizationFactor'),
  batchSize: number('BatchSize'),
  maximumRetryAttempts: number('MaximumRetryAttempts'),
  refreshConcurrency: number('RefreshConcurrency'),
  sweepIntervalMs: number('SweepIntervalMs'),
  logLevel: params.LogLevel,
  unscopedWriteRoutes: onOff('UnscopedWriteRoutes'),
  signedReads: onOff('SignedReads'),
  organizationId: params.OrganizationId,
  replicaStreamArn: params.ReplicaStreamArn,
};

const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'beacon-cdk-'));
try {
  const app = new cdk.App({
    outdir,
    // Placeholders for missing artifacts; each resource's construct path
    // in its metadata (aws:cdk:path), as the CLI's synth writes it.
    context: { [Beacon.PLACEHOLDER_CODE_CONTEXT]: true, 'aws:cdk:enable-path-metadata': true },
  });
  const stack = new cdk.Stack(app, `beacon-${props.stage ?? 'dev'}`);
  const beacon = new Beacon(stack, 'Beacon', props);
  const writer = new iam.Role(stack, 'Writer', { assumedBy: new iam.AccountRootPrincipal() });
  beacon.grantRegister(writer, 'orders');
  const viewer = new iam.Role(stack, 'Viewer', { assumedBy: new iam.AccountRootPrincipal() });
  beacon.grantView(viewer);
  const web = new lambda.Function(stack, 'Web', {
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({})'),
  });
  beacon.addConsumer(web, { needs: ['orders', 'payments==1.2.0'], consumer: 'web' });
  const template = app.synth().getStackByName(stack.stackName).template;
  process.stdout.write(JSON.stringify(template, null, 1) + '\n');
} finally {
  fs.rmSync(outdir, { recursive: true, force: true });
}
