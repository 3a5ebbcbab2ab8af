// What the docs and the other files of the repository say stays what the
// construct is: the README's example is infra/cdk/example/app.ts, and the
// stream mapping's filter is infra/filter-criteria.json.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { FILTER_PATTERNS } from '../lib/beacon';
import { PACKAGE, REPO } from './util';

describe('the docs and the repository agree with the construct', () => {
  it('the README\'s "Deploy with the CDK" example is infra/cdk/example/app.ts', () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('Deploy with the CDK'));
    assert.ok(section, 'README.md has a section "## Deploy with the CDK"');
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'the section has a ```ts code block');
    assert.equal(block, fs.readFileSync(path.join(PACKAGE, 'example', 'app.ts'), 'utf8'));
  });

  it('the fan-out\'s filter is infra/filter-criteria.json\'s', () => {
    const file = JSON.parse(fs.readFileSync(path.join(REPO, 'infra', 'filter-criteria.json'), 'utf8'));
    assert.deepEqual(FILTER_PATTERNS, file.Filters.map((f: { Pattern: string }) => f.Pattern));
  });
});
