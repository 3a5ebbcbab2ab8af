import * as fs from 'fs';
import * as path from 'path';
import { Annotations, ArnFormat, Aws, CfnOutput, Duration, Names, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventschemas from 'aws-cdk-lib/aws-eventschemas';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { readApiDefinition, renderApiDefinition } from './api-definition';
import { EVENT_SCHEMAS, eventSchemaContent } from './event-schemas';
import { checkInteger, checkName, checkNeeds, checkPattern } from './validation';

/** This package's root (infra/cdk), from its compiled files in dist/lib. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
/** The repository's root, whose target/lambda and infra/ the defaults name. */
const REPO_ROOT = path.resolve(PACKAGE_ROOT, '..', '..');

/**
 * The registry's settings: the parameters of infra/template.yaml, with the
 * same defaults and the same rules, checked at synth time.
 */
export interface BeaconProps {
  /**
   * Deployment stage; part of every resource name (`beacon-<stage>`, ...).
   * A lowercase letter, then up to 15 lowercase letters, digits or `-`.
   * @default 'dev'
   */
  readonly stage?: string;
  /**
   * Concurrent fan-out batches per stream shard, 1 to 10 (per-item order is kept).
   * @default 1
   */
  readonly parallelizationFactor?: number;
  /**
   * Stream records per fan-out invocation, 1 to 10000.
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * Retries of a failing stream batch before its metadata goes to the
   * on-failure queue, -1 to 10000 (-1: until the record is a day old).
   * @default 5
   */
  readonly maximumRetryAttempts?: number;
  /**
   * Pages of large fan-outs written at once (the refresh queue mapping's
   * maximum concurrency), 2 to 1000.
   * @default 10
   */
  readonly refreshConcurrency?: number;
  /**
   * Between two sweeps of the expiry index in the sweeper's one-minute
   * invocation, in milliseconds, 100 to 60000.
   * @default 1000
   */
  readonly sweepIntervalMs?: number;
  /**
   * The functions' application log level: TRACE, DEBUG, INFO, WARN or ERROR.
   * @default lambda.ApplicationLogLevel.INFO
   */
  readonly logLevel?: lambda.ApplicationLogLevel;
  /**
   * Whether the catalog API keeps the seed's unscoped write routes
   * (POST /catalog/register and /catalog/deregister), which IAM cannot
   * scope to one service.
   * @default true
   */
  readonly unscopedWriteRoutes?: boolean;
  /**
   * Whether the catalog API's lookups require SigV4 (IAM) too.
   * @default false
   */
  readonly signedReads?: boolean;
  /**
   * An AWS Organization (`o-...`) whose member accounts may use the
   * registry by their roles' `beacon:*` tags (docs/deploy.md, "Member
   * accounts of an Organization").
   * @default - this account only
   */
  readonly organizationId?: string;
  /**
   * This Region's replica stream of the global table that
   * infra/global-table.yaml makes: the construct then makes no table and
   * runs this Region's pipeline on the replica (docs/deploy.md, "Every
   * Region at once"). Not combined with `organizationId`.
   * @default - the construct makes its own table
   */
  readonly replicaStreamArn?: string;
  /**
   * The name of an EventBridge bus in this stack's account and Region
   * (`default`, or one of its own): every change event also goes on it,
   * with `detail-type` the event's kind and `source` `beacon.<stage>`, the
   * bus's policy lets only the construct's two publishing roles put that
   * source, and the events' schemas go to an EventBridge schema registry
   * `beacon-<stage>` (docs/deploy.md, "Change events on EventBridge").
   * @default - events go to the SNS topic only
   */
  readonly eventBusName?: string;
  /**
   * The directory of the Lambda artifacts `./scripts/package` builds:
   * `<name>/bootstrap.zip` for each function and
   * `extensions/beacon-extension.zip` for the layer.
   * @default - the repository's target/lambda
   */
  readonly codeDirectory?: string;
  /**
   * The catalog API's definition, a CloudFormation fragment as the SAM
   * template includes it.
   * @default - the repository's infra/api-gateway.json
   */
  readonly apiDefinitionFile?: string;
}

/** How a Lambda function uses the registry through the Beacon extension. */
export interface ConsumerOptions {
  /**
   * What the function needs, one requirement each: `orders`,
   * `payments==1.2.0`, `users^1.2`, `users>=1.2,<2` (1 to 100).
   */
  readonly needs: string[];
  /**
   * The consumer's name: its partition (`CONSUMER#<name>`), its view, the
   * `consumer` of its `resolved` events.
   * @default - the function's name when it is given literally, else a name derived from the function's construct path
   */
  readonly consumer?: string;
}

/**
 * Beacon's registry, as infra/template.yaml deploys it: the table, the
 * change topic, the fan-out, refresh, sweeper and catalog API functions
 * with their event source mappings, schedule, queues, alarms, the catalog
 * API and the extension layer. Each function's role grants exactly what the
 * template's grants after AWS's SAM transform (tests/tests/iam/cdk.rs).
 */
export class Beacon extends Construct {
  /**
   * The context key that lets synth go on without the Lambda artifacts
   * (`-c beacon:placeholderCode=true`): every function and the layer then
   * ship a placeholder that only fails, saying to run ./scripts/package.
   */
  public static readonly PLACEHOLDER_CODE_CONTEXT = 'beacon:placeholderCode';

  /** The stage, part of every resource name. */
  public readonly stage: string;
  /** The registry table; undefined on a replica of a global table (`replicaStreamArn`). */
  public readonly table?: dynamodb.ITable;
  /** The registry table's name (`beacon-<stage>`). */
  public readonly tableName: string;
  /** The registry table's ARN (also when it is a replica of a global table). */
  public readonly tableArn: string;
  /** The table's stream (the replica's, with `replicaStreamArn`). */
  public readonly tableStreamArn: string;
  /** The change topic. */
  public readonly topic: sns.ITopic;
  /** Where a stream batch's metadata goes once its retries are exhausted. */
  public readonly onFailureQueue: sqs.IQueue;
  /** The pages of large refreshes (FIFO). */
  public readonly refreshQueue: sqs.IQueue;
  /** Refresh pages that failed 5 times. */
  public readonly refreshDeadLetterQueue: sqs.IQueue;
  /** The fan-out function (stream → events and views). */
  public readonly fanoutFunction: lambda.IFunction;
  /** The refresh function (one page of a large refresh per invocation). */
  public readonly refreshFunction: lambda.IFunction;
  /** The sweeper (expires registrations past `expires_at`). */
  public readonly sweeperFunction: lambda.IFunction;
  /** The catalog API's function. */
  public readonly catalogApiFunction: lambda.IFunction;
  /** The catalog API. */
  public readonly api: apigateway.IRestApi;
  /** The catalog API's stage (named as the stage). */
  public readonly apiStage: apigateway.Stage;
  /** The extension layer (`extensions/beacon-extension`). */
  public readonly extensionLayer: lambda.ILayerVersion;

  private readonly replica: boolean;
  private readonly codeDirectory: string;
  private placeholderWarned = false;

  public constructor(scope: Construct, id: string, props: BeaconProps = {}) {
    super(scope, id);
    const settings = checkProps(props);
    const stage = settings.stage;
    const organizationId = settings.organizationId;
    const organization = organizationId !== undefined;
    this.replica = settings.replicaStreamArn !== undefined;
    this.codeDirectory = props.codeDirectory ?? path.join(REPO_ROOT, 'target', 'lambda');
    this.stage = stage;
    this.tableName = `beacon-${stage}`;
    this.tableArn = Stack.of(this).formatArn({ service: 'dynamodb', resource: 'table', resourceName: this.tableName });

    // ---- the registry ----------------------------------------------------
    if (settings.replicaStreamArn !== undefined) {
      this.tableStreamArn = settings.replicaStreamArn;
    } else {
      const table = new dynamodb.Table(this, 'Table', {
        tableName: this.tableName,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        timeToLiveAttribute: 'expires_at',
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        // Encrypted at rest either way; DynamoDB refuses cross-account
        // access under the AWS managed key, so for an Organization the
        // table uses the AWS owned key (infra/template.yaml says more).
        encryption: organization ? dynamodb.TableEncryption.DEFAULT : dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy: RemovalPolicy.RETAIN,
        resourcePolicy: organization ? this.organizationTablePolicy(organizationId) : undefined,
      });
      // Sparse: only registrations carry expiry_shard. The sweeper queries
      // what is due in `expiry`; listings page through `listing`.
      table.addGlobalSecondaryIndex({
        indexName: 'expiry',
        partitionKey: { name: 'expiry_shard', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'expires_at', type: dynamodb.AttributeType.NUMBER },
        projectionType: dynamodb.ProjectionType.KEYS_ONLY,
      });
      table.addGlobalSecondaryIndex({
        indexName: 'listing',
        partitionKey: { name: 'expiry_shard', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.KEYS_ONLY,
      });
      this.table = table;
      this.tableStreamArn = table.tableStreamArn!;
    }

    // ---- change events and queues -----------------------------------------
    const topic = new sns.Topic(this, 'Topic', { topicName: `beacon-changes-${stage}` });
    // Encrypted with the AWS managed SNS key, named as the template names
    // it (the L2's masterKey would name it by an alias ARN).
    (topic.node.defaultChild as sns.CfnTopic).kmsMasterKeyId = 'alias/aws/sns';
    this.topic = topic;
    const onFailureQueue = new sqs.Queue(this, 'OnFailureQueue', {
      queueName: `beacon-fanout-on-failure-${stage}`,
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    const refreshDeadLetterQueue = new sqs.Queue(this, 'RefreshDeadLetterQueue', {
      queueName: `beacon-refresh-dead-${stage}.fifo`,
      fifo: true,
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    // FIFO for its deduplication, every page its own message group, high
    // throughput mode; visible again after six times the refresh
    // function's timeout (docs/architecture.md, "Large fan-outs").
    const refreshQueue = new sqs.Queue(this, 'RefreshQueue', {
      queueName: `beacon-refresh-${stage}.fifo`,
      fifo: true,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      visibilityTimeout: Duration.seconds(180),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: refreshDeadLetterQueue, maxReceiveCount: 5 },
    });
    this.onFailureQueue = onFailureQueue;
    this.refreshQueue = refreshQueue;
    this.refreshDeadLetterQueue = refreshDeadLetterQueue;

    // ---- functions ----------------------------------------------------------
    const defaults = {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      memorySize: 128,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: settings.logLevel,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
    };
    // Every function's environment (the template's Globals).
    const environment = (own: Record<string, string>): Record<string, string> => ({
      BEACON_TABLE: this.tableName,
      // This Region's keys for the bookkeeping and views, only on a replica.
      ...(this.replica ? { BEACON_REPLICA_REGION: Aws.REGION } : {}),
      ...own,
    });
    const fn = (id: string, options: FunctionOptions): lambda.Function => {
      // An explicit role with the template's statements inline, as SAM
      // makes it: AWSLambdaBasicExecutionRole and nothing else attached.
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole')],
        inlinePolicies: { [`${id}RolePolicy0`]: new iam.PolicyDocument({ statements: options.statements }) },
      });
      return new lambda.Function(this, id, {
        ...defaults,
        functionName: options.functionName,
        description: options.description,
        code: this.code(options.artifact),
        timeout: Duration.seconds(options.timeoutSeconds ?? 30),
        environment: environment(options.environment),
        role,
      });
    };
    const table = this.tableArn;
    const registrationsOnly = leadingKeys('ForAllValues:StringLike', ['SERVICE#*']);

    // What both functions that publish events (the fan-out and the refresh
    // function) get besides their own: the topic and the refresh queue. An
    // optional destination of the events (an EventBridge bus) adds its
    // variables to publisherEnvironment and its statement to publishing,
    // which follows Publish in both roles as in the template.
    const eventSource = `beacon.${stage}`;
    const busArn =
      settings.eventBusName === undefined
        ? undefined
        : Stack.of(this).formatArn({ service: 'events', resource: 'event-bus', resourceName: settings.eventBusName });
    const publisherEnvironment: Record<string, string> = {
      BEACON_TOPIC_ARN: topic.topicArn,
      BEACON_REFRESH_QUEUE_URL: refreshQueue.queueUrl,
      ...(busArn !== undefined ? { BEACON_EVENT_BUS_ARN: busArn, BEACON_EVENT_SOURCE: eventSource } : {}),
    };
    const publishing = [
      allow('Publish', ['sns:Publish'], [topic.topicArn]),
      // The same events on the bus, as the stack's source only (every
      // entry's: events:source is multi-valued, and never none).
      ...(busArn !== undefined
        ? [
            allow('PutEvents', ['events:PutEvents'], [busArn], {
              'ForAllValues:StringEquals': { 'events:source': eventSource },
              'Null': { 'events:source': 'false' },
            }),
          ]
        : []),
    ];
    const fanout = fn('FanoutFunction', {
      functionName: `beacon-fanout-${stage}`,
      description: 'Stream batch -> change events on SNS + resolved-item refresh.',
      artifact: 'fanout/bootstrap.zip',
      timeoutSeconds: 60,
      environment: publisherEnvironment,
      statements: [
        // ConditionCheckItem: a view group's claim checks the service's
        // generation in the same transaction.
        allow(
          'Registry',
          [
            'dynamodb:GetItem',
            'dynamodb:Query',
            'dynamodb:PutItem',
            'dynamodb:UpdateItem',
            'dynamodb:DeleteItem',
            'dynamodb:ConditionCheckItem',
          ],
          [table],
        ),
        allow('Stream', ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'], [this.tableStreamArn]),
        // ListStreams takes no resource (IAM defines it wildcard-only).
        allow('ListStreams', ['dynamodb:ListStreams'], ['*']),
        ...publishing,
        allow('OnFailure', ['sqs:SendMessage'], [onFailureQueue.queueArn, refreshQueue.queueArn]),
      ],
    });

    // The stream mapping as a plain CfnEventSourceMapping: the L2
    // DynamoEventSource grants the stream to the role itself (and its
    // on-failure destination sqs:GetQueueAttributes/GetQueueUrl), beyond
    // what the template's statements above grant.
    new lambda.CfnEventSourceMapping(this, 'FanoutStream', {
      functionName: fanout.functionName,
      eventSourceArn: this.tableStreamArn,
      startingPosition: 'TRIM_HORIZON',
      batchSize: settings.batchSize,
      maximumBatchingWindowInSeconds: 0,
      parallelizationFactor: settings.parallelizationFactor,
      bisectBatchOnFunctionError: true,
      maximumRetryAttempts: settings.maximumRetryAttempts,
      maximumRecordAgeInSeconds: 86400,
      functionResponseTypes: ['ReportBatchItemFailures'],
      destinationConfig: { onFailure: { destination: onFailureQueue.queueArn } },
      // Must equal infra/filter-criteria.json (a test checks).
      filterCriteria: { filters: FILTER_PATTERNS.map((pattern) => ({ pattern })) },
    });

    const refresh = fn('RefreshFunction', {
      functionName: `beacon-refresh-${stage}`,
      description: 'Writes one page of a large refresh\'s dependents (from the refresh queue).',
      artifact: 'refresh/bootstrap.zip',
      environment: publisherEnvironment,
      statements: [
        allow('Registry', ['dynamodb:Query'], [table]),
        // Views (CONSUMER#) and the fan-out's bookkeeping (FANOUT#), never a registration.
        allow('Views', ['dynamodb:UpdateItem'], [table], leadingKeys('ForAllValues:StringLike', ['CONSUMER#*', 'FANOUT#*'])),
        ...publishing,
        allow(
          'Pages',
          ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ChangeMessageVisibility'],
          [refreshQueue.queueArn],
        ),
      ],
    });
    new lambda.CfnEventSourceMapping(this, 'RefreshPages', {
      functionName: refresh.functionName,
      eventSourceArn: refreshQueue.queueArn,
      batchSize: 1,
      functionResponseTypes: ['ReportBatchItemFailures'],
      scalingConfig: { maximumConcurrency: settings.refreshConcurrency },
    });

    const sweeper = fn('SweeperFunction', {
      functionName: `beacon-sweeper-${stage}`,
      description: 'Expires registrations past expires_at, from the sparse expiry index, every second.',
      artifact: 'sweeper/bootstrap.zip',
      // A minute of sweeps, 10 s of overlap with the next, 8 s for the janitor.
      timeoutSeconds: 90,
      environment: { BEACON_TOPIC_ARN: topic.topicArn, BEACON_SWEEP_INTERVAL_MS: String(settings.sweepIntervalMs) },
      statements: [
        allow('DueIndex', ['dynamodb:Query'], [`${table}/index/expiry`]),
        allow('Expire', ['dynamodb:DeleteItem'], [table], registrationsOnly),
        // The janitor: viewers' subscriptions of this topic, found by
        // listing queue names (wildcard-only), and only viewers' queues.
        allow('ViewerSubscriptions', ['sns:ListSubscriptionsByTopic', 'sns:Unsubscribe'], [topic.topicArn]),
        allow('FindViewerQueues', ['sqs:ListQueues'], ['*']),
        allow(
          'ViewerQueues',
          ['sqs:ListQueueTags', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes', 'sqs:DeleteQueue'],
          viewerQueues(),
        ),
      ],
    });
    // A failed invocation is not re-run: the next minute's sweeps take over.
    sweeper.configureAsyncInvoke({ retryAttempts: 0 });
    // SAM's ScheduleV2 event: a schedule, and a role that may invoke the
    // sweeper and nothing else (the L2 Schedule's target would also grant
    // the function's versions, `<arn>:*`).
    const scheduleRole = new iam.Role(this, 'SweeperFunctionEveryMinuteRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
      inlinePolicies: {
        SweeperFunctionEveryMinuteLambdaPolicy: new iam.PolicyDocument({
          statements: [new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [sweeper.functionArn] })],
        }),
      },
    });
    new scheduler.CfnSchedule(this, 'SweeperFunctionEveryMinute', {
      scheduleExpression: 'rate(1 minute)',
      flexibleTimeWindow: { mode: 'OFF' },
      target: {
        arn: sweeper.functionArn,
        roleArn: scheduleRole.roleArn,
        // The minute the sweeps belong to (the window's start).
        input: '{"time": "<aws.scheduler.scheduled-time>"}',
        retryPolicy: { maximumRetryAttempts: 0 },
      },
    });

    const catalogApiFunction = fn('CatalogApiFunction', {
      functionName: `beacon-catalog-api-${stage}`,
      description: 'The catalog HTTP API (seed 1\'s routes, per-service writes, resolution, listing).',
      artifact: 'catalog-api/bootstrap.zip',
      environment: { BEACON_UNSCOPED_WRITES: settings.unscopedWriteRoutes ? 'on' : 'off' },
      statements: [
        // A service's registrations; the listing index's keys.
        allow('Registry', ['dynamodb:Query'], [table, `${table}/index/listing`]),
        // The registrations a listing page names, and nothing else.
        allow('ListedRegistrations', ['dynamodb:BatchGetItem'], [table], registrationsOnly),
        // It registers and deregisters (SERVICE#) and writes nothing else.
        allow('Register', ['dynamodb:PutItem', 'dynamodb:DeleteItem'], [table], registrationsOnly),
      ],
    });
    this.fanoutFunction = fanout;
    this.refreshFunction = refresh;
    this.sweeperFunction = sweeper;
    this.catalogApiFunction = catalogApiFunction;

    // Only the fan-out's and refresh function's roles publish and send
    // pages; explicit denies for everyone else.
    const pipelineRoles = [fanout.role!.roleArn, refresh.role!.roleArn];
    for (const statement of this.topicPolicy(pipelineRoles, organizationId)) topic.addToResourcePolicy(statement);
    refreshQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyBeaconSendsPages',
        principals: pipelineRoles.map((arn) => new iam.ArnPrincipal(arn)),
        actions: ['sqs:SendMessage'],
        resources: [refreshQueue.queueArn],
      }),
    );
    refreshQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'NobodyElseSendsPages',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sqs:SendMessage'],
        resources: [refreshQueue.queueArn],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': pipelineRoles } },
      }),
    );

    // ---- change events on an EventBridge bus (eventBusName) -------------------
    if (settings.eventBusName !== undefined && busArn !== undefined) {
      // On the bus, only the two publishing roles put this source: the
      // topic's NobodyElsePublishes, for the bus.
      new events.CfnEventBusPolicy(this, 'EventBusPolicy', {
        eventBusName: settings.eventBusName,
        statementId: `beacon-${stage}-only-its-publishers`,
        statement: {
          Effect: 'Deny',
          Principal: '*',
          Action: 'events:PutEvents',
          Resource: busArn,
          Condition: {
            'ForAnyValue:StringEquals': { 'events:source': eventSource },
            'ArnNotEquals': { 'aws:PrincipalArn': pipelineRoles },
          },
        },
      });
      const registry = new eventschemas.CfnRegistry(this, 'EventSchemaRegistry', {
        registryName: `beacon-${stage}`,
        description: "Beacon's events as they arrive on an EventBridge bus (detail-type = the kind, source = beacon.<Stage>).",
      });
      for (const schema of EVENT_SCHEMAS) {
        new eventschemas.CfnSchema(this, schema.id, {
          registryName: registry.attrRegistryName,
          schemaName: `beacon.${stage}@${schema.suffix}`,
          type: 'JSONSchemaDraft4',
          description: schema.description,
          content: eventSchemaContent(REPO_ROOT, schema, eventSource),
        });
      }
    }

    // ---- the catalog API ------------------------------------------------------
    const definition = readApiDefinition(path.join(REPO_ROOT, 'infra'), props.apiDefinitionFile);
    const body = renderApiDefinition(
      definition.document,
      {
        conditions: {
          UnscopedWriteRoutesOn: settings.unscopedWriteRoutes,
          SignedReadsOn: settings.signedReads,
          OrganizationOn: organization,
        },
        refs: organization ? { OrganizationId: organizationId } : {},
        variables: {
          'AWS::Partition': Aws.PARTITION,
          'AWS::Region': Aws.REGION,
          'AWS::AccountId': Aws.ACCOUNT_ID,
          'CatalogApiFunction.Arn': catalogApiFunction.functionArn,
        },
      },
      definition.file,
    );
    const api = new apigateway.SpecRestApi(this, 'CatalogApi', {
      apiDefinition: apigateway.ApiDefinition.fromInline(body),
      // The document's title names the API, as when no Name is given.
      restApiName: apiTitle(body),
      cloudWatchRole: false,
      deploy: false,
    });
    // A new deployment whenever the definition changes, as SAM's
    // CatalogApiDeployment<hash>.
    const deployment = new apigateway.Deployment(this, 'CatalogApiDeployment', { api });
    deployment.addToLogicalId(body);
    this.apiStage = new apigateway.Stage(this, 'CatalogApiStage', { deployment, stageName: stage });
    api.deploymentStage = this.apiStage;
    this.api = api;
    // API Gateway may invoke the function, from this API's stage only.
    catalogApiFunction.addPermission('CatalogApiPermission', {
      action: 'lambda:InvokeFunction',
      principal: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      sourceArn: this.apiArn(`${stage}/*`),
    });

    // ---- the extension layer ------------------------------------------------------
    const layer = new lambda.LayerVersion(this, 'ExtensionLayer', {
      layerVersionName: `beacon-extension-${stage}`,
      description: 'Keeps NEEDED_SERVICES resolved in a file (extensions/beacon-extension).',
      code: this.code('extensions/beacon-extension.zip'),
      compatibleArchitectures: [lambda.Architecture.ARM_64],
      compatibleRuntimes: [
        lambda.Runtime.PROVIDED_AL2023,
        lambda.Runtime.PYTHON_3_12,
        lambda.Runtime.PYTHON_3_13,
        lambda.Runtime.NODEJS_20_X,
        lambda.Runtime.NODEJS_22_X,
        lambda.Runtime.JAVA_21,
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    if (organization) {
      // Functions of the Organization's member accounts may use the layer.
      layer.addPermission('ExtensionLayerOrganizationPermission', { accountId: '*', organizationId });
    }
    this.extensionLayer = layer;

    // ---- alarms ------------------------------------------------------------------------
    const minute = Duration.minutes(1);
    const alarm = (id: string, description: string, metric: cloudwatch.IMetric, evaluationPeriods = 1, threshold = 0) =>
      new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        evaluationPeriods,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    alarm(
      'OnFailureAlarm',
      'A stream batch exhausted its retries; its records were not published.',
      onFailureQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: minute }),
    );
    alarm(
      'RefreshDeadLetterAlarm',
      'A refresh page failed 5 times; some dependents\' views were not written.',
      refreshDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: minute }),
    );
    alarm(
      'BadItemsAlarm',
      'The fan-out skipped a record or a view because a stored item cannot be written; see its ERROR log line.',
      new cloudwatch.Metric({
        namespace: 'Beacon',
        metricName: 'BadItemsSkipped',
        dimensionsMap: { Function: 'fanout' },
        statistic: 'Sum',
        period: minute,
      }),
    );
    alarm(
      'IteratorAgeAlarm',
      'The fan-out is falling behind the stream (changes reach consumers late).',
      fanout.metric('IteratorAge', { statistic: 'Maximum', period: minute }),
      3,
      60000,
    );
    const errors = (f: lambda.Function, period: Duration) => f.metricErrors({ statistic: 'Sum', period });
    alarm('FanoutErrorsAlarm', 'The fan-out function errored.', errors(fanout, minute));
    alarm('RefreshErrorsAlarm', 'The refresh function errored.', errors(refresh, minute));
    alarm('SweeperErrorsAlarm', 'The sweeper errored; expired registrations linger.', errors(sweeper, Duration.minutes(5)));
    alarm('CatalogApiErrorsAlarm', 'The catalog API function errored.', errors(catalogApiFunction, Duration.minutes(5)));

    // ---- outputs -------------------------------------------------------------------------
    new CfnOutput(this, 'TableName', { value: this.tableName, exportName: `beacon-${stage}-table` });
    new CfnOutput(this, 'TableArn', { value: this.tableArn, exportName: `beacon-${stage}-table-arn` });
    new CfnOutput(this, 'StreamArn', { value: this.tableStreamArn });
    new CfnOutput(this, 'TopicArn', { value: topic.topicArn, exportName: `beacon-${stage}-topic-arn` });
    new CfnOutput(this, 'ApiUrl', {
      value: `https://${api.restApiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${stage}`,
    });
    new CfnOutput(this, 'ApiArn', {
      description: 'The catalog API\'s stage as IAM names it (infra/member.yaml\'s RegistryApiArn).',
      value: this.apiArn(stage),
    });
    new CfnOutput(this, 'LayerArn', { value: layer.layerVersionArn, exportName: `beacon-${stage}-extension-layer` });
    new CfnOutput(this, 'OnFailureQueueUrl', { value: onFailureQueue.queueUrl });
    new CfnOutput(this, 'RefreshDeadLetterQueueUrl', { value: refreshDeadLetterQueue.queueUrl });
  }

  /**
   * Lets `grantee` register, heartbeat and deregister instances of
   * `service` and no other: infra/policies/service-writer.json (its items,
   * `SERVICE#<service>`, in the table) and
   * infra/policies/catalog-writer.json (the catalog API's per-service
   * register and deregister routes).
   */
  public grantRegister(grantee: iam.IGrantable, service: string): iam.Grant {
    checkName('Beacon.grantRegister', 'service', service);
    const items = iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      resourceArns: [this.tableArn],
      conditions: leadingKeys('ForAllValues:StringEquals', [`SERVICE#${service}`]),
    });
    const routes = iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: ['register', 'deregister'].map((route) =>
        this.apiArn(`${this.stage}/POST/catalog/services/${service}/${route}`),
      ),
    });
    return items.combine(routes);
  }

  /**
   * Lets `grantee` follow the registry as `beacon watch` and `beacon ui`
   * do: infra/policies/registry-viewer.json (read the table, subscribe and
   * use only its own `beacon-watch-*` / `beacon-ui-*` queues of this
   * account and Region).
   */
  public grantView(grantee: iam.IGrantable): iam.Grant {
    const queues = viewerQueues();
    const own = { 'aws:ResourceTag/beacon:owner': '${aws:userid}' };
    const tagKeys = { 'aws:TagKeys': ['beacon:owner', 'beacon:lease'] };
    const grants = [
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['dynamodb:Scan', 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'],
        resourceArns: [this.tableArn],
      }),
      iam.Grant.addToPrincipal({ grantee, actions: ['dynamodb:Query'], resourceArns: [`${this.tableArn}/index/listing`] }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['sns:Subscribe'],
        resourceArns: [this.topic.topicArn],
        conditions: { StringEquals: { 'sns:Protocol': 'sqs' }, StringLike: { 'sns:Endpoint': queues } },
      }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['sqs:CreateQueue', 'sqs:TagQueue'],
        resourceArns: queues,
        conditions: {
          'StringEquals': { 'aws:RequestTag/beacon:owner': '${aws:userid}' },
          'ForAllValues:StringEquals': tagKeys,
          'Null': { 'aws:ResourceTag/beacon:owner': 'true' },
        },
      }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['sqs:GetQueueAttributes', 'sqs:SetQueueAttributes', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'],
        resourceArns: queues,
        conditions: { StringEquals: own },
      }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['sqs:TagQueue'],
        resourceArns: queues,
        conditions: {
          'StringEquals': own,
          'StringEqualsIfExists': { 'aws:RequestTag/beacon:owner': '${aws:userid}' },
          'ForAllValues:StringEquals': tagKeys,
        },
      }),
    ];
    return grants.reduce((all, g) => all.combine(g));
  }

  /**
   * Makes `fn` a consumer of the registry: adds the extension layer, the
   * variables the extension reads (`NEEDED_SERVICES`, `BEACON_TABLE`,
   * `BEACON_CONSUMER`, and `BEACON_REPLICA_REGION` on a replica) and
   * infra/policies/consumer.json's grant (its own `CONSUMER#<consumer>`
   * partition only). Returns the consumer's name.
   */
  public addConsumer(fn: lambda.Function, options: ConsumerOptions): string {
    const where = 'Beacon.addConsumer';
    checkNeeds(where, 'options.needs', options.needs);
    const consumer = options.consumer ?? defaultConsumer(fn);
    checkName(where, options.consumer === undefined ? `the default consumer (from ${fn.node.path})` : 'options.consumer', consumer);
    if (fn.architecture.name !== lambda.Architecture.ARM_64.name) {
      throw new Error(`${where}: fn ${fn.node.path} is ${fn.architecture.name}; the extension layer is built for arm64`);
    }
    fn.addLayers(this.extensionLayer);
    fn.addEnvironment('NEEDED_SERVICES', options.needs.join(','));
    // A name in this account; the ARN reaches the table from another one.
    const sameAccount = Stack.of(fn).account === Stack.of(this).account;
    fn.addEnvironment('BEACON_TABLE', sameAccount ? this.tableName : this.tableArn);
    fn.addEnvironment('BEACON_CONSUMER', consumer);
    if (this.replica) fn.addEnvironment('BEACON_REPLICA_REGION', Aws.REGION);
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
      resourceArns: [this.tableArn],
      conditions: leadingKeys('ForAllValues:StringEquals', [`CONSUMER#${consumer}`]),
    });
    return consumer;
  }

  /** The catalog API's ARN for IAM, `.../<api id>/<rest>`. */
  private apiArn(rest: string): string {
    return Stack.of(this).formatArn({
      service: 'execute-api',
      resource: this.api.restApiId,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      resourceName: rest,
    });
  }

  /** A function's code: its artifact, or the placeholder when the context allows it. */
  private code(artifact: string): lambda.Code {
    const file = path.join(this.codeDirectory, artifact);
    if (fs.existsSync(file)) return lambda.Code.fromAsset(file);
    const allowed = this.node.tryGetContext(Beacon.PLACEHOLDER_CODE_CONTEXT);
    if (allowed !== true && allowed !== 'true') {
      throw new Error(
        `Beacon: ${file} does not exist: build the artifacts with ./scripts/package (or set the context ` +
          `${Beacon.PLACEHOLDER_CODE_CONTEXT}=true to synthesize with placeholders that only fail)`,
      );
    }
    if (!this.placeholderWarned) {
      this.placeholderWarned = true;
      Annotations.of(this).addWarningV2(
        'beacon:placeholderCode',
        `No artifacts in ${this.codeDirectory}: the functions and the layer are placeholders that only fail. Run ./scripts/package before deploying.`,
      );
    }
    const placeholder = artifact.startsWith('extensions/') ? 'layer' : 'function';
    return lambda.Code.fromAsset(path.join(PACKAGE_ROOT, 'placeholder', placeholder));
  }

  /** The table's resource policy for an Organization's member accounts (infra/template.yaml's). */
  private organizationTablePolicy(organizationId: string): iam.PolicyDocument {
    const member = (tag: string) => ({
      'StringEquals': { 'aws:PrincipalOrgID': organizationId },
      // A tag with an empty value would name the bare prefix.
      'StringLike': { [`aws:PrincipalTag/beacon:${tag}`]: '?*' },
    });
    const ownPartition = (tag: string, prefix: string) => ({
      ...member(tag),
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [`${prefix}#\${aws:PrincipalTag/beacon:${tag}}`] },
      'Null': { 'dynamodb:LeadingKeys': 'false', [`aws:PrincipalTag/beacon:${tag}`]: 'false' },
    });
    const anyone = [new iam.AnyPrincipal()];
    return new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'MemberServiceWritesItsOwnService',
          principals: anyone,
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
          resources: [this.tableArn],
          conditions: ownPartition('service', 'SERVICE'),
        }),
        new iam.PolicyStatement({
          sid: 'MemberConsumerUsesItsOwnView',
          principals: anyone,
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
          resources: [this.tableArn],
          conditions: ownPartition('consumer', 'CONSUMER'),
        }),
        // What infra/policies/registry-viewer.json lets a viewer of this
        // account read, and no more.
        new iam.PolicyStatement({
          sid: 'MemberViewerReads',
          principals: anyone,
          actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan'],
          resources: [this.tableArn, `${this.tableArn}/index/listing`],
          conditions: {
            StringEquals: { 'aws:PrincipalOrgID': organizationId, 'aws:PrincipalTag/beacon:viewer': 'true' },
          },
        }),
      ],
    });
  }

  /** The topic's policy statements (infra/template.yaml's TopicPolicy). */
  private topicPolicy(pipelineRoles: string[], organizationId: string | undefined): iam.PolicyStatement[] {
    const topic = this.topic.topicArn;
    const endpointAccount = organizationId !== undefined ? '${aws:PrincipalAccount}' : Aws.ACCOUNT_ID;
    return [
      new iam.PolicyStatement({
        sid: 'OnlyTheFanOutPublishes',
        principals: pipelineRoles.map((arn) => new iam.ArnPrincipal(arn)),
        actions: ['sns:Publish'],
        resources: [topic],
      }),
      new iam.PolicyStatement({
        sid: 'AccountSubscribes',
        principals: [new iam.AccountRootPrincipal()],
        actions: ['sns:Subscribe', 'sns:GetTopicAttributes'],
        resources: [topic],
      }),
      // Member accounts' viewers subscribe too, with OrganizationId.
      ...(organizationId !== undefined
        ? [
            new iam.PolicyStatement({
              sid: 'OrganizationSubscribes',
              principals: [new iam.AnyPrincipal()],
              actions: ['sns:Subscribe', 'sns:GetTopicAttributes'],
              resources: [topic],
              conditions: {
                StringEquals: { 'aws:PrincipalOrgID': organizationId, 'aws:PrincipalTag/beacon:viewer': 'true' },
              },
            }),
          ]
        : []),
      // Explicit denies, which no identity policy's grant overrides.
      new iam.PolicyStatement({
        sid: 'NobodyElsePublishes',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sns:Publish'],
        resources: [topic],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': pipelineRoles } },
      }),
      new iam.PolicyStatement({
        sid: 'OnlyQueuesAndFunctionsSubscribe',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sns:Subscribe'],
        resources: [topic],
        conditions: { StringNotEquals: { 'sns:Protocol': ['sqs', 'lambda'] } },
      }),
      new iam.PolicyStatement({
        sid: 'OnlyThisAccountsEndpoints',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sns:Subscribe'],
        resources: [topic],
        conditions: {
          StringNotLike: {
            'sns:Endpoint': [
              `arn:${Aws.PARTITION}:sqs:${Aws.REGION}:${endpointAccount}:*`,
              `arn:${Aws.PARTITION}:lambda:${Aws.REGION}:${endpointAccount}:function:*`,
            ],
          },
        },
      }),
    ];
  }
}

/** How one of the construct's functions is made. */
interface FunctionOptions {
  readonly functionName: string;
  readonly description: string;
  /** Its artifact under the code directory. */
  readonly artifact: string;
  readonly timeoutSeconds?: number;
  readonly environment: Record<string, string>;
  readonly statements: iam.PolicyStatement[];
}

/** The stream mapping's filter (infra/filter-criteria.json): registrations and needs, never the fan-out's own writes. */
export const FILTER_PATTERNS = [
  '{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"SERVICE#"}]},"sk":{"S":[{"prefix":"INSTANCE#"}]}}}}',
  '{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"CONSUMER#"}]},"sk":{"S":["NEEDS"]}}}}',
];

/** An IAM Condition block: operator → key → value(s). */
type Conditions = Record<string, Record<string, unknown>>;

function allow(sid: string, actions: string[], resources: string[], conditions?: Conditions): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid, actions, resources, conditions });
}

/** Every leading key matches `keys` (by `operator`), and the request names one. */
function leadingKeys(operator: string, keys: string[]): Conditions {
  return { [operator]: { 'dynamodb:LeadingKeys': keys }, 'Null': { 'dynamodb:LeadingKeys': 'false' } };
}

/** The queues `beacon watch` and `beacon ui` make, in this account and Region. */
function viewerQueues(): string[] {
  return ['beacon-watch-*', 'beacon-ui-*'].map((q) => `arn:${Aws.PARTITION}:sqs:${Aws.REGION}:${Aws.ACCOUNT_ID}:${q}`);
}

function apiTitle(body: unknown): string | undefined {
  const info = (body as { info?: { title?: unknown } }).info;
  return typeof info?.title === 'string' ? info.title : undefined;
}

function defaultConsumer(fn: lambda.Function): string {
  const given = (fn.node.defaultChild as lambda.CfnFunction).functionName;
  if (given !== undefined && !Token.isUnresolved(given)) return given;
  return Names.uniqueResourceName(fn, { maxLength: 64, allowedSpecialCharacters: '-_' });
}

/** The props with their defaults, checked as the template checks its parameters. */
interface Settings {
  readonly stage: string;
  readonly parallelizationFactor: number;
  readonly batchSize: number;
  readonly maximumRetryAttempts: number;
  readonly refreshConcurrency: number;
  readonly sweepIntervalMs: number;
  readonly logLevel: lambda.ApplicationLogLevel;
  readonly unscopedWriteRoutes: boolean;
  readonly signedReads: boolean;
  readonly organizationId?: string;
  readonly replicaStreamArn?: string;
  readonly eventBusName?: string;
}

const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

function checkProps(props: BeaconProps): Settings {
  const where = 'Beacon';
  const s: Settings = {
    stage: props.stage ?? 'dev',
    parallelizationFactor: props.parallelizationFactor ?? 1,
    batchSize: props.batchSize ?? 100,
    maximumRetryAttempts: props.maximumRetryAttempts ?? 5,
    refreshConcurrency: props.refreshConcurrency ?? 10,
    sweepIntervalMs: props.sweepIntervalMs ?? 1000,
    logLevel: props.logLevel ?? lambda.ApplicationLogLevel.INFO,
    unscopedWriteRoutes: props.unscopedWriteRoutes ?? true,
    signedReads: props.signedReads ?? false,
    // An empty string is the template's "not set".
    organizationId: props.organizationId || undefined,
    replicaStreamArn: props.replicaStreamArn || undefined,
    eventBusName: props.eventBusName || undefined,
  };
  checkPattern(where, 'props.stage', s.stage, /^[a-z][a-z0-9-]{0,15}$/, 'a stage');
  checkInteger(where, 'props.parallelizationFactor', s.parallelizationFactor, 1, 10);
  checkInteger(where, 'props.batchSize', s.batchSize, 1, 10000);
  checkInteger(where, 'props.maximumRetryAttempts', s.maximumRetryAttempts, -1, 10000);
  checkInteger(where, 'props.refreshConcurrency', s.refreshConcurrency, 2, 1000);
  checkInteger(where, 'props.sweepIntervalMs', s.sweepIntervalMs, 100, 60000);
  if (!LOG_LEVELS.includes(s.logLevel)) {
    throw new Error(`${where}: props.logLevel ${JSON.stringify(s.logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  if (s.organizationId !== undefined) {
    checkPattern(where, 'props.organizationId', s.organizationId, /^o-[a-z0-9]{10,32}$/, 'an Organization id');
  }
  if (s.replicaStreamArn !== undefined) {
    checkPattern(
      where,
      'props.replicaStreamArn',
      s.replicaStreamArn,
      /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table\/beacon-[a-z0-9-]+\/stream\/[0-9T:.-]+$/,
      'a DynamoDB stream ARN of a beacon-<stage> table',
    );
  }
  if (s.eventBusName !== undefined) {
    checkPattern(
      where,
      'props.eventBusName',
      s.eventBusName,
      /^[A-Za-z0-9._-]{1,256}$/,
      "an EventBridge bus's name in this stack's account and Region (a name, not an ARN)",
    );
  }
  // The template's rule OneRegionForOrganizations.
  if (s.organizationId !== undefined && s.replicaStreamArn !== undefined) {
    throw new Error(
      `${where}: props.organizationId and props.replicaStreamArn are not combined yet: OrganizationId sets a ` +
        'resource policy on the table this construct makes, and a replica of a global table is made by infra/global-table.yaml',
    );
  }
  return s;
}
