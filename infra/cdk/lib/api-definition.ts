// The catalog API's definition as the SAM template deploys it: a
// CloudFormation fragment (infra/api-gateway.json, generated from the
// OpenAPI document infra/openapi.yaml) that AWS::Include puts into the API's Body, with
// conditions (Fn::If), Ref and Fn::Sub inside. Here it is rendered at synth
// time for one construct's props: conditions are decided, AWS::NoValue
// removes its key or element, Fn::Sub becomes a string with the
// construct's own tokens in it. Anything else in the fragment is an error,
// so a new intrinsic there fails synth instead of deploying as text.

import * as fs from 'fs';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';

/** What the fragment's intrinsics mean for one construct. */
export interface ApiDefinitionContext {
  /** Fn::If conditions by name (UnscopedWriteRoutesOn, SignedReadsOn, OrganizationOn). */
  readonly conditions: Record<string, boolean>;
  /** Ref targets by name (template parameters, e.g. OrganizationId). */
  readonly refs: Record<string, string>;
  /** Fn::Sub variables by name (AWS::Partition, CatalogApiFunction.Arn, ...), values may be tokens. */
  readonly variables: Record<string, string>;
}

/** The definition the template includes. */
export const DEFINITION_FILES = ['api-gateway.json'];

/** Reads the API definition: `file` if given, else the first of DEFINITION_FILES in `infraDir` that exists. */
export function readApiDefinition(infraDir: string, file?: string): { file: string; document: unknown } {
  const found = file ?? DEFINITION_FILES.map((f) => path.join(infraDir, f)).find((f) => fs.existsSync(f));
  if (found === undefined) {
    throw new Error(`Beacon: no API definition in ${infraDir} (looked for ${DEFINITION_FILES.join(', ')})`);
  }
  const text = fs.readFileSync(found, 'utf8');
  const document: unknown = found.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  // A plain OpenAPI document (infra/openapi.yaml, say) has no
  // integrations: deployed, every route would answer 500.
  if (!text.includes('x-amazon-apigateway-integration')) {
    throw new Error(
      `Beacon: ${found} has no API Gateway integration: it is not a deployable API definition ` +
        '(infra/api-gateway.json is; `beacon openapi --api-gateway` generates it)',
    );
  }
  return { file: found, document };
}

const NO_VALUE = Symbol('AWS::NoValue');

/** Renders the fragment for one construct (see the file's comment). `where` names it in errors. */
export function renderApiDefinition(fragment: unknown, context: ApiDefinitionContext, where = 'the API definition'): unknown {
  const rendered = render(fragment, context, where);
  if (rendered === NO_VALUE) throw new Error(`Beacon: ${where} renders to nothing`);
  return rendered;
}

function render(value: unknown, context: ApiDefinitionContext, at: string): unknown {
  if (Array.isArray(value)) {
    return value.map((v, i) => render(v, context, `${at}[${i}]`)).filter((v) => v !== NO_VALUE);
  }
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1) {
    const [key, arg] = entries[0];
    if (key === 'Ref' || key.startsWith('Fn::')) return intrinsic(key, arg, context, at);
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of entries) {
    const r = render(v, context, `${at}.${key}`);
    if (r !== NO_VALUE) out[key] = r;
  }
  return out;
}

function intrinsic(name: string, arg: unknown, context: ApiDefinitionContext, at: string): unknown {
  switch (name) {
    case 'Fn::If': {
      if (!Array.isArray(arg) || arg.length !== 3 || typeof arg[0] !== 'string') {
        throw new Error(`Beacon: ${at}: Fn::If takes [condition, then, else]`);
      }
      const on = context.conditions[arg[0]];
      if (on === undefined) throw new Error(`Beacon: ${at}: unknown condition ${arg[0]}`);
      return render(arg[on ? 1 : 2], context, at);
    }
    case 'Ref': {
      if (arg === 'AWS::NoValue') return NO_VALUE;
      const target = typeof arg === 'string' ? context.refs[arg] : undefined;
      if (target === undefined) throw new Error(`Beacon: ${at}: Ref to ${JSON.stringify(arg)}, which the construct does not define`);
      return target;
    }
    case 'Fn::Sub': {
      if (typeof arg !== 'string') throw new Error(`Beacon: ${at}: only the string form of Fn::Sub is supported`);
      return arg.replace(/\$\{([^}]*)\}/g, (_, variable: string) => {
        // `${!x}` is CloudFormation's escape for a literal `${x}`.
        if (variable.startsWith('!')) return `\${${variable.slice(1)}}`;
        const v = context.variables[variable];
        if (v === undefined) throw new Error(`Beacon: ${at}: Fn::Sub variable \${${variable}}, which the construct does not define`);
        return v;
      });
    }
    default:
      throw new Error(`Beacon: ${at}: ${name} is not supported in the API definition`);
  }
}
