// The events' schemas as the stack publishes them to the EventBridge
// schema registry (infra/template.yaml's ChangeEventSchema,
// InvalidEventSchema, ResolvedEventSchema): each JSON Schema of
// events/schema/ in the draft 4 the registry takes, wrapped in the envelope
// EventBridge adds. The template holds the same content literally
// (tests/tests/template/events.rs derives it the same way), and the
// construct's parity test holds the two equal.

import * as fs from 'fs';
import * as path from 'path';

/** One schema the registry holds: its resource id, name suffix, file and description. */
export interface EventSchema {
  readonly id: string;
  readonly suffix: string;
  readonly file: string;
  readonly description: string;
}

export const EVENT_SCHEMAS: EventSchema[] = [
  {
    id: 'ChangeEventSchema',
    suffix: 'Change',
    file: 'change',
    description: 'One real change to one registration (registered, updated, status_changed, deregistered, expired).',
  },
  {
    id: 'InvalidEventSchema',
    suffix: 'Invalid',
    file: 'invalid',
    description: 'An item written directly to the table breaks the registration schema.',
  },
  { id: 'ResolvedEventSchema', suffix: 'Resolved', file: 'resolved', description: "A consumer's resolved view changed." },
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Draft 2020-12 to draft 4: `const` a one-value enum, `$defs` definitions; `if`/`then` and `propertyNames`, which only narrow, dropped. */
function draft4(v: Json): Json {
  if (Array.isArray(v)) return v.map(draft4);
  if (v === null || typeof v !== 'object') return v;
  const out: { [key: string]: Json } = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === '$schema' || k === '$id' || k === 'propertyNames') continue;
    if (k === 'const') out.enum = [x];
    else if (k === '$defs') out.definitions = draft4(x);
    else if (k === '$ref') out[k] = String(x).replace('#/$defs/', '#/definitions/');
    else if (k === 'allOf') {
      const kept = (x as Json[]).filter((s) => !(s !== null && typeof s === 'object' && 'if' in s)).map(draft4);
      if (kept.length > 0) out[k] = kept;
    } else out[k] = draft4(x);
  }
  return out;
}

/** A schema's content for the registry, its source `source` (a string, tokens allowed). */
export function eventSchemaContent(repo: string, schema: EventSchema, source: string): string {
  const read = JSON.parse(fs.readFileSync(path.join(repo, 'events', 'schema', `${schema.file}.schema.json`), 'utf8')) as {
    [key: string]: Json;
  };
  const kind = read.properties !== null && typeof read.properties === 'object' ? (read.properties as any).kind : undefined;
  const detailTypes: Json[] = kind?.enum ?? [kind?.const];
  const detail = draft4(read) as { [key: string]: Json };
  const definitions = (detail.definitions ?? {}) as { [key: string]: Json };
  delete detail.definitions;
  return JSON.stringify({
    $schema: 'http://json-schema.org/draft-04/schema#',
    title: `${String(detail.title ?? schema.file)} on EventBridge`,
    type: 'object',
    required: ['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'resources', 'detail'],
    properties: {
      version: { type: 'string' },
      id: { type: 'string' },
      'detail-type': { type: 'string', enum: detailTypes },
      source: { type: 'string', enum: [source] },
      account: { type: 'string' },
      time: { type: 'string', format: 'date-time' },
      region: { type: 'string' },
      resources: { type: 'array', items: { type: 'string' } },
      detail: { $ref: '#/definitions/detail' },
    },
    // The definitions by name, then the detail (the order the template's
    // content has them in: it is compared as text).
    definitions: {
      ...Object.fromEntries(Object.keys(definitions).sort().map((k) => [k, definitions[k]])),
      detail,
    },
  }, null, 2) + '\n';
}
