// Synth-time checks of the construct's inputs: the template's parameter
// rules (infra/template.yaml's AllowedPattern / AllowedValues / MinValue /
// MaxValue / Rules) and the domain's rules for service names and needs.
//
// The domain (crate beacon-domain, shared/domain) checks names and needs in
// code, not with regexes; the regexes below transcribe that code rule for
// rule, each beside the function it comes from, and
// tests/tests/iam/cdk.rs holds them equal to it on a corpus of accepted and
// refused needs (the Rust parser decides, these regexes must agree).

import { Token } from 'aws-cdk-lib';

/**
 * A regex alternation matching the decimal integers 0..max without leading
 * zeros: semver's numeric identifiers are u64 (semver 1.0's
 * `numeric_identifier` refuses a larger one as an overflow).
 */
function uintUpTo(max: string): string {
  const n = max.length;
  const alternatives = ['0'];
  if (n > 1) alternatives.push(`[1-9][0-9]{0,${n - 2}}`);
  for (let i = 0; i < n; i++) {
    const digit = Number(max[i]);
    const low = i === 0 ? 1 : 0;
    if (digit > low) {
      const range = digit - 1 === low ? `${low}` : `[${low}-${digit - 1}]`;
      const rest = n - i - 1;
      alternatives.push(`${max.slice(0, i)}${range}${rest > 0 ? `[0-9]{${rest}}` : ''}`);
    }
  }
  alternatives.push(max);
  return `(?:${alternatives.join('|')})`;
}

/** A version number part: a u64, no leading zero (semver 1.0, `numeric_identifier`). */
const NUM = uintUpTo('18446744073709551615');
/** A pre-release identifier: digits without a leading zero, or any mix with a letter or `-` (semver 1.0, `identifier`). */
const PRE_ID = '(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)';
/** A build identifier: letters, digits and `-` (semver 1.0, `identifier`). */
const BUILD_ID = '[0-9A-Za-z-]+';
const PRE = `(?:-${PRE_ID}(?:\\.${PRE_ID})*)`;
const BUILD = `(?:\\+${BUILD_ID}(?:\\.${BUILD_ID})*)`;

/**
 * A service or consumer name: a letter, then letters, digits, `-` or `_`,
 * at most 64 in all. shared/domain/src/validation.rs, `validate_name`
 * (MAX_NAME_LEN = 64); the same pattern as infra/openapi.yaml's `Name`
 * and events/schema/*.schema.json.
 */
export const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/**
 * A version after `==`: semver (`1.2.0`, `1.2.0-rc.1`, `1.2.0+b5`), or the
 * seed's two-part `1.2` (read as `1.2.0`). shared/domain/src/version.rs,
 * `parse_version`: semver 1.0's `Version::parse`, else `MAJOR.MINOR` with
 * `.0` added before any pre-release or build. Its length limits
 * (MAX_VERSION_LEN = 64, the padded form too) are checked beside it.
 */
const SEMVER = new RegExp(`^${NUM}\\.${NUM}\\.${NUM}${PRE}?${BUILD}?$`);
const TWO_PART = new RegExp(`^${NUM}\\.${NUM}${PRE}?${BUILD}?$`);
const MAX_VERSION_LEN = 64;

/**
 * A range comparator: `^`, `~`, `>=`, `>`, `<=` or `<`, then MAJOR, and
 * optionally `.MINOR` and `.PATCH` (either may be a wildcard `*`, `x`, `X`;
 * after a wildcard minor, only a wildcard patch), a pre-release and build
 * only after a numeric patch. shared/domain/src/requirement.rs,
 * `Requirement::add_constraint` (it must start with one of `^ ~ > <`, and
 * is then semver 1.0's `Comparator::parse`); at most 2 × MAX_VERSION_LEN
 * characters.
 */
const WILD = '[*xX]';
const COMPARATOR = new RegExp(
  `^(?:\\^|~|>=|>|<=|<)${NUM}(?:\\.${WILD}(?:\\.${WILD})?|\\.${NUM}(?:\\.${WILD}|\\.${NUM}${PRE}?${BUILD}?)?)?$`,
);

/** Most requirements in one needs list (shared/domain/src/requirement.rs, MAX_NEEDS). */
export const MAX_NEEDS = 100;

/** Why one constraint (`==1.2.0`, `^1.2`, `>=1,<2`'s parts) is refused, or undefined. */
function constraintError(text: string): string | undefined {
  if (text.startsWith('==')) {
    const version = text.slice(2);
    if (version.length > MAX_VERSION_LEN) return `its version is longer than ${MAX_VERSION_LEN} characters`;
    if (SEMVER.test(version)) return undefined;
    if (TWO_PART.test(version)) {
      return version.length + 2 > MAX_VERSION_LEN
        ? `its version is longer than ${MAX_VERSION_LEN} characters once read as MAJOR.MINOR.PATCH`
        : undefined;
    }
    return `\`${version}\` is not a version (semver such as 1.2.0, or 1.2)`;
  }
  if (text.startsWith('=')) return 'use `==` for an exact version (as in payments==1.2.0)';
  if (!/^[\^~<>]/.test(text)) return `\`${text}\` must start with one of == ^ ~ >= > <= <`;
  if (text.length > 2 * MAX_VERSION_LEN) return 'the version range is too long';
  if (!COMPARATOR.test(text)) return `\`${text}\` is not a version range (such as ^1.2, ~1.2.3, >=1.2, <2)`;
  return undefined;
}

/**
 * Why `text` is not exactly one requirement (`orders`, `payments==1.2.0`,
 * `users^1.2`, `users>=1.2,<2`), or undefined when it is one. As
 * shared/domain/src/requirement.rs, `parse_needs` reads one: a name, then
 * an optional constraint; a comma followed by a constraint continues the
 * range, a comma followed by a letter would start another requirement.
 * Unlike the extension, which ignores spaces around the parts, a need
 * here is written without any.
 */
export function requirementError(text: string): string | undefined {
  if (/\s/.test(text)) return 'contains whitespace';
  const name = /^[A-Za-z][A-Za-z0-9_-]*/.exec(text)?.[0];
  if (name === undefined) return 'must start with a service name (a letter)';
  if (!NAME.test(name)) return `its service name is longer than 64 characters`;
  const parts = text.slice(name.length).split(',');
  for (const [i, part] of parts.entries()) {
    if (i === 0 && part === '') continue;
    if (part === '') return 'has an empty part (two commas in a row, or a trailing comma)';
    if (i > 0 && /^[A-Za-z]/.test(part)) return `is more than one requirement (\`${part}\` starts another): give each its own entry`;
    const error = constraintError(part);
    if (error !== undefined) return error;
  }
  return undefined;
}

/** Throws unless `value` is a service or consumer name (see NAME). */
export function checkName(where: string, what: string, value: string): void {
  if (Token.isUnresolved(value)) return;
  if (!NAME.test(value)) {
    throw new Error(
      `${where}: ${what} ${JSON.stringify(value)} is not a name (a letter, then letters, digits, - or _; at most 64)`,
    );
  }
}

/** Throws unless `needs` is a needs list (1 to 100 requirements). */
export function checkNeeds(where: string, what: string, needs: string[]): void {
  if (needs.length === 0) throw new Error(`${where}: ${what} is empty; a consumer that needs nothing declares no needs`);
  if (needs.length > MAX_NEEDS) {
    throw new Error(`${where}: ${what} lists ${needs.length} requirements; at most ${MAX_NEEDS} are allowed`);
  }
  needs.forEach((need, i) => {
    if (Token.isUnresolved(need)) return;
    const error = requirementError(need);
    if (error !== undefined) {
      throw new Error(`${where}: ${what}[${i}] ${JSON.stringify(need)} is not a requirement: ${error}`);
    }
  });
}

/** Throws unless `value` is an integer within [min, max] (a Number parameter's MinValue/MaxValue). */
export function checkInteger(where: string, what: string, value: number, min: number, max: number): void {
  if (Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${where}: ${what} ${value} is not an integer from ${min} to ${max}`);
  }
}

/** Throws unless `value` matches `pattern` (a String parameter's AllowedPattern). */
export function checkPattern(where: string, what: string, value: string, pattern: RegExp, meaning: string): void {
  if (Token.isUnresolved(value)) return;
  if (!pattern.test(value)) {
    throw new Error(`${where}: ${what} ${JSON.stringify(value)} is not ${meaning} (${pattern.source.replace(/^\^|\$$/g, '')})`);
  }
}
