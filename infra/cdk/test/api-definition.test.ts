// The renderer of the API definition fragment (lib/api-definition.ts), on
// small fragments and on the repository's own.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { readApiDefinition, renderApiDefinition } from '../lib/api-definition';
import { REPO } from './util';

const context = {
  conditions: { On: true, Off: false },
  refs: { OrganizationId: 'o-a1b2c3d4e5' },
  variables: { 'AWS::Region': 'eu-west-1', 'Fn.Arn': 'arn:fn' },
};

describe('the API definition renderer', () => {
  it('decides conditions, drops AWS::NoValue, fills Ref and Fn::Sub', () => {
    const fragment = {
      a: { 'Fn::If': ['On', 1, 2] },
      b: { 'Fn::If': ['Off', 1, { Ref: 'AWS::NoValue' }] },
      list: [1, { Ref: 'AWS::NoValue' }, { 'Fn::If': ['Off', 2, 3] }],
      org: { Ref: 'OrganizationId' },
      uri: { 'Fn::Sub': 'arn:${AWS::Region}:${Fn.Arn}/x/${!aws:userid}' },
      plain: '${aws:PrincipalTag/beacon:service}',
      nested: { security: { 'Fn::If': ['On', [{ sigv4: [] }], []] } },
    };
    assert.deepEqual(renderApiDefinition(fragment, context), {
      a: 1,
      list: [1, 3],
      org: 'o-a1b2c3d4e5',
      uri: 'arn:eu-west-1:arn:fn/x/${aws:userid}',
      plain: '${aws:PrincipalTag/beacon:service}',
      nested: { security: [{ sigv4: [] }] },
    });
  });

  it('refuses what it does not know, naming where', () => {
    for (const [fragment, message] of [
      [{ x: { 'Fn::If': ['Maybe', 1, 2] } }, /\.x: unknown condition Maybe/],
      [{ x: { Ref: 'Stage' } }, /\.x: Ref to "Stage"/],
      [{ x: { 'Fn::Sub': '${Nope}' } }, /\.x: Fn::Sub variable \$\{Nope\}/],
      [{ x: { 'Fn::Sub': ['${A}', { A: 'a' }] } }, /only the string form/],
      [{ x: { 'Fn::GetAtt': ['A', 'Arn'] } }, /\.x: Fn::GetAtt is not supported/],
      [{ Ref: 'AWS::NoValue' }, /renders to nothing/],
    ] as Array<[unknown, RegExp]>) {
      assert.throws(() => renderApiDefinition(fragment, context), message);
    }
  });

  it('refuses a document without integrations (the plain OpenAPI document)', () => {
    assert.throws(
      () => readApiDefinition(path.join(REPO, 'infra'), path.join(REPO, 'infra', 'openapi.yaml')),
      /openapi\.yaml has no API Gateway integration: it is not a deployable API definition/,
    );
  });

  it('renders the repository\'s definition with no intrinsic left, for every setting', () => {
    const { file, document } = readApiDefinition(path.join(REPO, 'infra'));
    assert.match(file, /(api-gateway\.json|openapi\.yaml)$/);
    for (const on of [true, false]) {
      const body = renderApiDefinition(document, {
        conditions: { UnscopedWriteRoutesOn: on, SignedReadsOn: on, OrganizationOn: on },
        refs: { OrganizationId: 'o-a1b2c3d4e5' },
        variables: { 'AWS::Partition': 'aws', 'AWS::Region': 'us-east-1', 'AWS::AccountId': '1', 'CatalogApiFunction.Arn': 'arn:fn' },
      }) as any;
      assert.doesNotMatch(JSON.stringify(body), /"(Ref|Fn::[A-Za-z]+)"/);
      assert.equal('/catalog/register' in body.paths, on);
      assert.equal('x-amazon-apigateway-policy' in body, on);
    }
  });
});
