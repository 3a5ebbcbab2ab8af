// What the tests share: the repository's paths, a stack with a Beacon in
// it, and AWS's SAM transform of infra/template.yaml.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Beacon, BeaconProps } from '../lib';

// aws-cdk-lib's own CloudFormation validation at every synth (about 5 s
// each here) runs once on the example app's synth by the CLI
// (scripts/check), not on each of the tests' stacks.
process.env.CDK_VALIDATION ??= 'false';

/** The repository (the tests run from infra/cdk/dist/test). */
export const REPO = path.resolve(__dirname, '..', '..', '..', '..');
/** infra/cdk. */
export const PACKAGE = path.resolve(__dirname, '..', '..');

export interface Synth {
  readonly app: App;
  readonly stack: Stack;
  readonly beacon: Beacon;
}

/** A stack `beacon-dev` holding a Beacon `Beacon`, its artifacts placeholders unless `codeDirectory` is given. */
export function beaconStack(props: BeaconProps = {}, context: Record<string, unknown> = {}): Synth {
  const app = new App({
    context: { [Beacon.PLACEHOLDER_CODE_CONTEXT]: true, 'aws:cdk:enable-path-metadata': true, ...context },
  });
  const stack = new Stack(app, 'beacon-dev');
  const beacon = new Beacon(stack, 'Beacon', props);
  return { app, stack, beacon };
}

export function template(props: BeaconProps = {}): Template {
  return Template.fromStack(beaconStack(props).stack);
}

/** Every resource of a type, as the template has them. */
export function resourcesOf(t: Template, type: string): Record<string, any> {
  return t.findResources(type);
}

/** The only resource of a type whose construct path ends with `suffix`. */
export function byPath(t: Template, suffix: string): any {
  const found = Object.values(t.toJSON().Resources as Record<string, any>).filter((r) =>
    String(r.Metadata?.['aws:cdk:path'] ?? '').endsWith(suffix),
  );
  if (found.length !== 1) throw new Error(`${found.length} resources at …${suffix}`);
  return found[0];
}

const PYTHON = path.join(REPO, '.venv', 'bin', 'python');

/** Whether AWS's SAM translator is installed (./scripts/bootstrap puts it into .venv). */
export const HAVE_SAM = fs.existsSync(PYTHON);

/** infra/template.yaml after AWS's SAM transform (tests/iam/sam_transform.py), for these parameters. */
export function samTemplate(params: Record<string, string> = {}): any {
  const args = Object.entries(params).map(([k, v]) => `${k}=${v}`);
  const out = execFileSync(PYTHON, [path.join(REPO, 'tests/iam/sam_transform.py'), path.join(REPO, 'infra/template.yaml'), ...args], {
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.toString('utf8'));
}
