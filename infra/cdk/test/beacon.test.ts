// The Beacon construct: its resources, what each prop changes, the grant
// helpers' statements, and every refusal of bad input (the message names
// the prop or argument). The equality with the SAM template, property by
// property, is sam-parity.test.ts; the roles' equality under the IAM
// simulator is tests/tests/iam/cdk.rs.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Beacon, BeaconProps } from '../lib';
import { beaconStack, byPath, REPO, template } from './util';

const ORG = 'o-a1b2c3d4e5';
const REPLICA = 'arn:aws:dynamodb:eu-west-1:123456789012:table/beacon-dev/stream/2026-11-26T00:00:00.000';

function body(t: Template): any {
  return Object.values(t.findResources('AWS::ApiGateway::RestApi'))[0].Properties.Body;
}

function consumerFunction(stack: Stack, id = 'Web', props: Partial<lambda.FunctionProps> = {}): lambda.Function {
  return new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({})'),
    ...props,
  });
}

/** A policy of infra/policies/, its statements without their Sids, normalized. */
function policyFile(name: string): unknown[] {
  const file = JSON.parse(fs.readFileSync(path.join(REPO, 'infra', 'policies', name), 'utf8'));
  return file.Statement.map(({ Sid: _, ...statement }: any) => normalized(statement));
}

/** Statements of the template written as infra/policies/ writes them: ${TableArn}, ${Partition}, ... */
function asPolicyFile(t: Template, statements: any[]): unknown[] {
  const resources = t.toJSON().Resources as Record<string, any>;
  const names: Record<string, string> = {
    'AWS::Partition': '${Partition}',
    'AWS::Region': '${Region}',
    'AWS::AccountId': '${Account}',
  };
  const placeholders = (v: any): any => {
    if (Array.isArray(v)) return v.map(placeholders);
    if (v === null || typeof v !== 'object') return v;
    if ('Ref' in v) {
      if (v.Ref in names) return names[v.Ref];
      if (resources[v.Ref]?.Type === 'AWS::SNS::Topic') return '${TopicArn}';
      if (resources[v.Ref]?.Type === 'AWS::ApiGateway::RestApi') return '${ApiId}';
    }
    if ('Fn::Join' in v) return placeholders(v['Fn::Join'][1]).join(v['Fn::Join'][0]);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, placeholders(x)]));
  };
  const text = JSON.stringify(placeholders(statements))
    .replaceAll('arn:${Partition}:dynamodb:${Region}:${Account}:table/beacon-dev', '${TableArn}')
    .replaceAll('${ApiId}/dev/', '${ApiId}/${Stage}/');
  return JSON.parse(text).map((s: unknown) => normalized(s));
}

/** As IAM reads a statement: a one-element list is its element, lists are sets. */
function normalized(v: any): any {
  if (Array.isArray(v)) {
    const items = v.map(normalized).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    return items.length === 1 ? items[0] : items;
  }
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, normalized(v[k])]));
}

/** The statements of the identity policies CDK attached to a principal (its DefaultPolicy). */
function statementsOf(t: Template, pathSuffix: string): any[] {
  return byPath(t, pathSuffix).Properties.PolicyDocument.Statement;
}

describe('the resources', () => {
  it('are the SAM template\'s, one each (with its own table, no Organization)', () => {
    const t = template();
    for (const [type, count] of Object.entries({
      'AWS::DynamoDB::Table': 1,
      'AWS::SNS::Topic': 1,
      'AWS::SNS::TopicPolicy': 1,
      'AWS::SQS::Queue': 3,
      'AWS::SQS::QueuePolicy': 1,
      'AWS::Lambda::Function': 4,
      'AWS::IAM::Role': 5,
      'AWS::IAM::Policy': 0,
      'AWS::Lambda::EventSourceMapping': 2,
      'AWS::Lambda::EventInvokeConfig': 1,
      'AWS::Scheduler::Schedule': 1,
      'AWS::ApiGateway::RestApi': 1,
      'AWS::ApiGateway::Deployment': 1,
      'AWS::ApiGateway::Stage': 1,
      'AWS::ApiGateway::Account': 0,
      'AWS::Lambda::Permission': 1,
      'AWS::Lambda::LayerVersion': 1,
      'AWS::Lambda::LayerVersionPermission': 0,
      'AWS::CloudWatch::Alarm': 8,
    })) {
      t.resourceCountIs(type, count);
    }
    assert.equal(Object.keys(t.toJSON().Resources).length, 33);
  });

  it('the table: keys, sparse indexes, stream, TTL, PITR, encryption, retained', () => {
    const t = template();
    t.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        TableName: 'beacon-dev',
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'expiry',
            KeySchema: [
              { AttributeName: 'expiry_shard', KeyType: 'HASH' },
              { AttributeName: 'expires_at', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'KEYS_ONLY' },
          },
          {
            IndexName: 'listing',
            KeySchema: [
              { AttributeName: 'expiry_shard', KeyType: 'HASH' },
              { AttributeName: 'pk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'KEYS_ONLY' },
          },
        ],
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        ResourcePolicy: Match.absent(),
      },
    });
  });

  it('the stream mapping and the refresh pages mapping: the template\'s settings and the props\'', () => {
    const t = template({ batchSize: 7, parallelizationFactor: 3, maximumRetryAttempts: -1, refreshConcurrency: 42 });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 7,
      ParallelizationFactor: 3,
      MaximumRetryAttempts: -1,
      MaximumBatchingWindowInSeconds: 0,
      BisectBatchOnFunctionError: true,
      MaximumRecordAgeInSeconds: 86400,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
      FilterCriteria: { Filters: Match.arrayWith([Match.objectLike({ Pattern: Match.stringLikeRegexp('SERVICE#') })]) },
    });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 42 },
    });
  });

  it('the sweeper: every minute by the scheduler, no retry, its interval', () => {
    const t = template({ sweepIntervalMs: 250 });
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: { Input: '{"time": "<aws.scheduler.scheduled-time>"}', RetryPolicy: { MaximumRetryAttempts: 0 } },
    });
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 0, Qualifier: '$LATEST' });
    t.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'beacon-sweeper-dev',
      Timeout: 90,
      Environment: { Variables: Match.objectLike({ BEACON_SWEEP_INTERVAL_MS: '250' }) },
    });
  });

  it('the functions: provided.al2023 on arm64, JSON logs at the log level', () => {
    const t = template({ logLevel: lambda.ApplicationLogLevel.DEBUG, stage: 'prod' });
    for (const name of ['fanout', 'refresh', 'sweeper', 'catalog-api']) {
      t.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: `beacon-${name}-prod`,
        Runtime: 'provided.al2023',
        Architectures: ['arm64'],
        Handler: 'bootstrap',
        MemorySize: 128,
        LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'DEBUG', SystemLogLevel: 'WARN' },
        Environment: { Variables: Match.objectLike({ BEACON_TABLE: 'beacon-prod', BEACON_REPLICA_REGION: Match.absent() }) },
      });
    }
  });

  it('the roles: AWSLambdaBasicExecutionRole and their inline statements only, no CDK grant', () => {
    const t = template();
    t.resourceCountIs('AWS::IAM::Policy', 0);
    for (const role of Object.values(t.findResources('AWS::IAM::Role'))) {
      const managed = JSON.stringify(role.Properties.ManagedPolicyArns ?? []);
      const scheduler = role.Properties.AssumeRolePolicyDocument.Statement[0].Principal.Service === 'scheduler.amazonaws.com';
      assert.equal(managed.includes('AWSLambdaBasicExecutionRole'), !scheduler);
      assert.equal((role.Properties.ManagedPolicyArns ?? []).length, scheduler ? 0 : 1);
      assert.equal(role.Properties.Policies.length, 1);
    }
  });

  it('artifacts from codeDirectory when they exist; otherwise synth refuses without the placeholder context', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'beacon-code-'));
    try {
      for (const f of ['fanout', 'refresh', 'sweeper', 'catalog-api'].map((n) => `${n}/bootstrap.zip`).concat('extensions/beacon-extension.zip')) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), `not really a zip: ${f}`);
      }
      const app = new App();
      const t = Template.fromStack(new Beacon(new Stack(app, 'withCode'), 'Beacon', { codeDirectory: dir }).node.scope as Stack);
      const keys = new Set(Object.values(t.findResources('AWS::Lambda::Function')).map((f) => f.Properties.Code.S3Key));
      assert.equal(keys.size, 4, 'one artifact per function');
      fs.rmSync(path.join(dir, 'sweeper'), { recursive: true });
      assert.throws(
        () => new Beacon(new Stack(new App(), 'noCode'), 'Beacon', { codeDirectory: dir }),
        /Beacon: .*sweeper\/bootstrap\.zip does not exist: build the artifacts with \.\/scripts\/package/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the props', () => {
  it('unscopedWriteRoutes: false removes the two unscoped routes and tells the function', () => {
    const on = body(template());
    const off = template({ unscopedWriteRoutes: false });
    assert.ok('/catalog/register' in on.paths && '/catalog/deregister' in on.paths);
    const paths = Object.keys(body(off).paths);
    assert.deepEqual(Object.keys(on.paths).filter((p) => !paths.includes(p)).sort(), ['/catalog/deregister', '/catalog/register']);
    off.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'beacon-catalog-api-dev',
      Environment: { Variables: Match.objectLike({ BEACON_UNSCOPED_WRITES: 'off' }) },
    });
  });

  it('signedReads: the lookups require SigV4', () => {
    const reads = ['/catalog', '/catalog/{name}', '/catalog/{name}/{version}'];
    const open = body(template()).paths;
    const signed = body(template({ signedReads: true })).paths;
    for (const p of reads) {
      assert.deepEqual(open[p].get.security, [], p);
      assert.deepEqual(signed[p].get.security, [{ sigv4: [] }], p);
    }
    assert.deepEqual(open['/catalog/services/{name}/register'].post.security, [{ sigv4: [] }]);
  });

  it('every integration invokes the construct\'s own catalog API function', () => {
    const t = template();
    const [fnId] = Object.keys(t.findResources('AWS::Lambda::Function', { Properties: { FunctionName: 'beacon-catalog-api-dev' } }));
    const paths = body(t).paths as Record<string, Record<string, any>>;
    for (const [p, methods] of Object.entries(paths)) {
      for (const op of Object.values(methods)) {
        assert.match(JSON.stringify(op['x-amazon-apigateway-integration'].uri), new RegExp(`"Fn::GetAtt":\\["${fnId}","Arn"\\]`), p);
      }
    }
  });

  it('organizationId: resource policies on the table, topic, API and layer; the AWS owned key', () => {
    const t = template({ organizationId: ORG, signedReads: true });
    t.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: false },
      ResourcePolicy: {
        PolicyDocument: {
          Statement: [
            Match.objectLike({ Sid: 'MemberServiceWritesItsOwnService', Principal: { AWS: '*' } }),
            Match.objectLike({ Sid: 'MemberConsumerUsesItsOwnView' }),
            Match.objectLike({ Sid: 'MemberViewerReads' }),
          ],
        },
      },
    });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Sid: 'OrganizationSubscribes', Condition: { StringEquals: { 'aws:PrincipalOrgID': ORG, 'aws:PrincipalTag/beacon:viewer': 'true' } } }),
          Match.objectLike({ Sid: 'OnlyThisAccountsEndpoints', Condition: { StringNotLike: { 'sns:Endpoint': Match.arrayWith([Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([':${aws:PrincipalAccount}:*'])]) })]) } } }),
        ]),
      },
    });
    t.hasResourceProperties('AWS::Lambda::LayerVersionPermission', { Action: 'lambda:GetLayerVersion', Principal: '*', OrganizationId: ORG });
    const policy = body(t)['x-amazon-apigateway-policy'];
    assert.deepEqual(policy.Statement.map((s: any) => s.Sid), ['AccountCallsAsBefore', 'Reads', 'MemberServiceWritesItsOwnService']);
    assert.deepEqual(policy.Statement[1].Condition, { StringEquals: { 'aws:PrincipalOrgID': ORG } });
    const noOrg = template();
    assert.equal('x-amazon-apigateway-policy' in body(noOrg), false);
    noOrg.resourceCountIs('AWS::Lambda::LayerVersionPermission', 0);
    assert.doesNotMatch(JSON.stringify(noOrg.toJSON()), /OrganizationSubscribes|PrincipalOrgID/);
  });

  it('replicaStreamArn: no table; the pipeline on the replica\'s stream, in this Region\'s keys', () => {
    const { stack, beacon } = beaconStack({ replicaStreamArn: REPLICA });
    const web = consumerFunction(stack);
    beacon.addConsumer(web, { needs: ['orders'] });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::DynamoDB::Table', 0);
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', { EventSourceArn: REPLICA });
    t.hasResourceProperties('AWS::IAM::Role', {
      Policies: [{ PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'Stream', Resource: REPLICA })]) } }],
    });
    const functions = Object.values(t.findResources('AWS::Lambda::Function'));
    assert.equal(functions.length, 5);
    for (const f of functions) assert.deepEqual(f.Properties.Environment.Variables.BEACON_REPLICA_REGION, { Ref: 'AWS::Region' });
    assert.equal(beacon.table, undefined);
  });

  it('eventBusName: both publishers put on the bus as beacon.<stage>, the bus policy, the schema registry', () => {
    const t = template({ eventBusName: 'platform', stage: 'prod' });
    const bus = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':event-bus/platform']] };
    for (const name of ['beacon-fanout-prod', 'beacon-refresh-prod']) {
      t.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: name,
        Environment: { Variables: Match.objectLike({ BEACON_EVENT_BUS_ARN: bus, BEACON_EVENT_SOURCE: 'beacon.prod' }) },
      });
    }
    const putters = Object.values(t.findResources('AWS::IAM::Role')).filter((r) =>
      JSON.stringify(r).includes('"events:PutEvents"'),
    );
    assert.equal(putters.length, 2, 'the fan-out\'s and the refresh function\'s roles only');
    t.hasResourceProperties('AWS::Events::EventBusPolicy', {
      EventBusName: 'platform',
      Statement: Match.objectLike({ Effect: 'Deny', Condition: Match.objectLike({ 'ForAnyValue:StringEquals': { 'events:source': 'beacon.prod' } }) }),
    });
    t.hasResourceProperties('AWS::EventSchemas::Registry', { RegistryName: 'beacon-prod' });
    t.resourceCountIs('AWS::EventSchemas::Schema', 3);
    const change = Object.values(t.findResources('AWS::EventSchemas::Schema', { Properties: { SchemaName: 'beacon.prod@Change' } }));
    const content = JSON.parse(change[0].Properties.Content);
    assert.deepEqual(content.properties.source.enum, ['beacon.prod']);
    assert.deepEqual(content.properties['detail-type'].enum, ['registered', 'updated', 'status_changed', 'deregistered', 'expired']);
    const none = template();
    none.resourceCountIs('AWS::EventSchemas::Schema', 0);
    none.resourceCountIs('AWS::Events::EventBusPolicy', 0);
    assert.doesNotMatch(JSON.stringify(none.toJSON()), /events:PutEvents|BEACON_EVENT_BUS_ARN/);
  });

  it('bad values are refused at synth, naming the prop', () => {
    const cases: Array<[BeaconProps, string]> = [
      [{ organizationId: 'x' }, 'Beacon: props.organizationId "x" is not an Organization id (o-[a-z0-9]{10,32})'],
      [{ organizationId: 'o-short' }, 'Beacon: props.organizationId "o-short" is not an Organization id (o-[a-z0-9]{10,32})'],
      [{ stage: 'Prod' }, 'Beacon: props.stage "Prod" is not a stage ([a-z][a-z0-9-]{0,15})'],
      [{ stage: 'a-very-long-stage-name' }, 'Beacon: props.stage "a-very-long-stage-name" is not a stage ([a-z][a-z0-9-]{0,15})'],
      [{ parallelizationFactor: 11 }, 'Beacon: props.parallelizationFactor 11 is not an integer from 1 to 10'],
      [{ parallelizationFactor: 0 }, 'Beacon: props.parallelizationFactor 0 is not an integer from 1 to 10'],
      [{ batchSize: 10001 }, 'Beacon: props.batchSize 10001 is not an integer from 1 to 10000'],
      [{ batchSize: 1.5 }, 'Beacon: props.batchSize 1.5 is not an integer from 1 to 10000'],
      [{ maximumRetryAttempts: -2 }, 'Beacon: props.maximumRetryAttempts -2 is not an integer from -1 to 10000'],
      [{ refreshConcurrency: 1 }, 'Beacon: props.refreshConcurrency 1 is not an integer from 2 to 1000'],
      [{ sweepIntervalMs: 99 }, 'Beacon: props.sweepIntervalMs 99 is not an integer from 100 to 60000'],
      [{ sweepIntervalMs: 60001 }, 'Beacon: props.sweepIntervalMs 60001 is not an integer from 100 to 60000'],
      [{ logLevel: lambda.ApplicationLogLevel.FATAL }, 'Beacon: props.logLevel "FATAL" is not one of TRACE, DEBUG, INFO, WARN, ERROR'],
      [{ logLevel: 'info' as lambda.ApplicationLogLevel }, 'Beacon: props.logLevel "info" is not one of TRACE, DEBUG, INFO, WARN, ERROR'],
      [
        { replicaStreamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/other/stream/2026' },
        'Beacon: props.replicaStreamArn "arn:aws:dynamodb:eu-west-1:123456789012:table/other/stream/2026" is not a DynamoDB stream ARN of a beacon-<stage> table',
      ],
      [{ organizationId: ORG, replicaStreamArn: REPLICA }, 'Beacon: props.organizationId and props.replicaStreamArn are not combined yet'],
      [
        { eventBusName: 'arn:aws:events:us-east-1:123456789012:event-bus/platform' },
        'Beacon: props.eventBusName "arn:aws:events:us-east-1:123456789012:event-bus/platform" is not an EventBridge bus\'s name in this stack\'s account and Region (a name, not an ARN)',
      ],
      [{ eventBusName: 'two words' }, 'Beacon: props.eventBusName "two words" is not an EventBridge bus\'s name'],
    ];
    for (const [props, message] of cases) {
      assert.throws(() => beaconStack(props), (e: Error) => e.message.startsWith(message), `${JSON.stringify(props)} → ${message}`);
    }
  });

  it('the template\'s bounds and "not set" are accepted', () => {
    for (const props of [
      { parallelizationFactor: 10, batchSize: 10000, maximumRetryAttempts: -1, refreshConcurrency: 1000, sweepIntervalMs: 100 },
      { parallelizationFactor: 1, batchSize: 1, maximumRetryAttempts: 10000, refreshConcurrency: 2, sweepIntervalMs: 60000 },
      { organizationId: '', replicaStreamArn: '', eventBusName: '' },
      { eventBusName: 'default' },
      { stage: 'p', logLevel: lambda.ApplicationLogLevel.TRACE },
    ] as BeaconProps[]) {
      beaconStack(props);
    }
  });
});

describe('the grant helpers', () => {
  it('grantRegister: the service\'s own items (service-writer.json) and its two API routes (catalog-writer.json)', () => {
    const { stack, beacon } = beaconStack();
    const role = new iam.Role(stack, 'Writer', { assumedBy: new iam.AccountRootPrincipal() });
    beacon.grantRegister(role, 'orders');
    const statements = statementsOf(Template.fromStack(stack), 'Writer/DefaultPolicy/Resource');
    assert.equal(statements.length, 2);
    assert.deepEqual(statements[0].Action, ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']);
    assert.deepEqual(statements[0].Condition, {
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['SERVICE#orders'] },
      'Null': { 'dynamodb:LeadingKeys': 'false' },
    });
    assert.match(JSON.stringify(statements[0].Resource), /:table\/beacon-dev"/);
    assert.equal(statements[1].Action, 'execute-api:Invoke');
    const routes = JSON.stringify(statements[1].Resource);
    assert.match(routes, /"\/dev\/POST\/catalog\/services\/orders\/register"/);
    assert.match(routes, /"\/dev\/POST\/catalog\/services\/orders\/deregister"/);
    assert.equal(statements[1].Resource.length, 2);
  });

  it('grantView: registry-viewer.json, statement for statement', () => {
    const { stack, beacon } = beaconStack();
    const role = new iam.Role(stack, 'Viewer', { assumedBy: new iam.AccountRootPrincipal() });
    beacon.grantView(role);
    const t = Template.fromStack(stack);
    assert.deepEqual(asPolicyFile(t, statementsOf(t, 'Viewer/DefaultPolicy/Resource')), policyFile('registry-viewer.json'));
  });

  it('grantRegister and addConsumer: service-writer.json + catalog-writer.json, consumer.json', () => {
    const { stack, beacon } = beaconStack();
    const role = new iam.Role(stack, 'Writer', { assumedBy: new iam.AccountRootPrincipal() });
    beacon.grantRegister(role, 'orders');
    beacon.addConsumer(consumerFunction(stack), { needs: ['orders'], consumer: 'web' });
    const t = Template.fromStack(stack);
    const fill = (statements: unknown[]) =>
      JSON.parse(JSON.stringify(statements).replaceAll('${Service}', 'orders').replaceAll('${Consumer}', 'web'));
    assert.deepEqual(
      asPolicyFile(t, statementsOf(t, 'Writer/DefaultPolicy/Resource')),
      fill([...policyFile('service-writer.json'), ...policyFile('catalog-writer.json')]),
    );
    assert.deepEqual(asPolicyFile(t, statementsOf(t, 'Web/ServiceRole/DefaultPolicy/Resource')), fill(policyFile('consumer.json')));
  });

  it('addConsumer: the layer, the extension\'s variables and consumer.json\'s grant', () => {
    const { stack, beacon } = beaconStack();
    const web = consumerFunction(stack);
    assert.equal(beacon.addConsumer(web, { needs: ['orders^1', 'payments==1.2.0'], consumer: 'web' }), 'web');
    const t = Template.fromStack(stack);
    const fn = byPath(t, '/Web/Resource');
    assert.deepEqual(fn.Properties.Environment.Variables, {
      NEEDED_SERVICES: 'orders^1,payments==1.2.0',
      BEACON_TABLE: 'beacon-dev',
      BEACON_CONSUMER: 'web',
    });
    assert.equal(fn.Properties.Layers.length, 1);
    const statements = statementsOf(t, 'Web/ServiceRole/DefaultPolicy/Resource');
    assert.equal(statements.length, 1);
    assert.deepEqual(statements[0].Action, ['dynamodb:GetItem', 'dynamodb:PutItem']);
    assert.deepEqual(statements[0].Condition, {
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['CONSUMER#web'] },
      'Null': { 'dynamodb:LeadingKeys': 'false' },
    });
  });

  it('addConsumer: the consumer defaults to the function\'s given name, else a name from its path', () => {
    const { stack, beacon } = beaconStack();
    assert.equal(beacon.addConsumer(consumerFunction(stack, 'Named', { functionName: 'web-named' }), { needs: ['orders'] }), 'web-named');
    const derived = beacon.addConsumer(consumerFunction(stack, 'Unnamed'), { needs: ['orders'] });
    assert.match(derived, /^beacon-devUnnamed[0-9A-F]{8}$/);
    const t = Template.fromStack(stack);
    assert.equal(byPath(t, '/Unnamed/Resource').Properties.Environment.Variables.BEACON_CONSUMER, derived);
  });

  it('bad arguments are refused at synth, naming them', () => {
    const { stack, beacon } = beaconStack();
    const role = new iam.Role(stack, 'R', { assumedBy: new iam.AccountRootPrincipal() });
    const web = consumerFunction(stack);
    const cases: Array<[() => unknown, string]> = [
      [() => beacon.grantRegister(role, '9orders'), 'Beacon.grantRegister: service "9orders" is not a name (a letter, then letters, digits, - or _; at most 64)'],
      [() => beacon.grantRegister(role, 'orders*'), 'Beacon.grantRegister: service "orders*" is not a name'],
      [() => beacon.grantRegister(role, ''), 'Beacon.grantRegister: service "" is not a name'],
      [() => beacon.addConsumer(web, { needs: ['orders^^1'] }), 'Beacon.addConsumer: options.needs[0] "orders^^1" is not a requirement: `^^1` is not a version range'],
      [() => beacon.addConsumer(web, { needs: ['orders', 'payments=1.2'] }), 'Beacon.addConsumer: options.needs[1] "payments=1.2" is not a requirement: use `==`'],
      [() => beacon.addConsumer(web, { needs: ['orders,payments'] }), 'Beacon.addConsumer: options.needs[0] "orders,payments" is not a requirement: is more than one requirement'],
      [() => beacon.addConsumer(web, { needs: [] }), 'Beacon.addConsumer: options.needs is empty'],
      [() => beacon.addConsumer(web, { needs: Array(101).fill('orders') }), 'Beacon.addConsumer: options.needs lists 101 requirements; at most 100 are allowed'],
      [() => beacon.addConsumer(web, { needs: ['orders'], consumer: 'web#1' }), 'Beacon.addConsumer: options.consumer "web#1" is not a name'],
      [
        () => beacon.addConsumer(consumerFunction(stack, 'X86', { architecture: lambda.Architecture.X86_64 }), { needs: ['orders'] }),
        'Beacon.addConsumer: fn beacon-dev/X86 is x86_64; the extension layer is built for arm64',
      ],
    ];
    for (const [call, message] of cases) {
      assert.throws(call, (e: Error) => e.message.startsWith(message), message);
    }
  });
});
