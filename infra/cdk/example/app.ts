import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Beacon } from '../lib';

const app = new cdk.App();
const stack = new cdk.Stack(app, 'beacon-dev');
const beacon = new Beacon(stack, 'Beacon', { stage: 'dev', unscopedWriteRoutes: false });

// A consumer: the extension keeps what it needs resolved in /tmp/beacon/services.json.
const web = new lambda.Function(stack, 'Web', {
  runtime: lambda.Runtime.NODEJS_22_X,
  architecture: lambda.Architecture.ARM_64,
  handler: 'index.handler',
  code: lambda.Code.fromInline('exports.handler = async () => require("fs").readFileSync("/tmp/beacon/services.json", "utf8")'),
});
beacon.addConsumer(web, { needs: ['orders^1', 'payments==1.2.0'], consumer: 'web' });

// A service that registers itself: its own items and API routes, no other service's.
const orders = new iam.Role(stack, 'OrdersRegistrar', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
beacon.grantRegister(orders, 'orders');
