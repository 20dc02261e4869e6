// docs/spec.md names, for every rule, the tests that prove ngi follows it. This keeps those
// names true: a renamed or deleted test breaks the build instead of leaving the spec citing
// a test that no longer exists.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { kitCases } from 'ngi-gateway/testing';

const spec = readFileSync('docs/spec.md', 'utf8');
/** `test/x.test.ts` “a title, or a literal part of one” */
const CITATION = /`(test\/[^`]+\.test\.ts)` “([^”]+)”/g;
/** A rule is a paragraph that starts with its number in bold: `**R6.2**`. */
const RULE = /^\*\*(R\d+\.\d+)\*\*/;
const CITES = new RegExp(CITATION.source);

const rules = spec
  .split(/\n\s*\n/)
  .map((paragraph) => ({ id: RULE.exec(paragraph)?.[1], text: paragraph }))
  .filter((rule): rule is { id: string; text: string } => rule.id !== undefined);

describe('docs/spec.md', () => {
  it('numbers its rules once each, in order', () => {
    const ids = rules.map((rule) => rule.id);
    assert.ok(ids.length > 40, `found ${ids.length} rules`);
    assert.equal(new Set(ids).size, ids.length, 'a rule number used twice');
    const key = (id: string) => id.slice(1).split('.').map(Number) as [number, number];
    for (let i = 1; i < ids.length; i++) {
      const [a, b] = key(ids[i - 1]!);
      const [c, d] = key(ids[i]!);
      assert.ok(c > a || (c === a && d === b + 1), `${ids[i]} after ${ids[i - 1]}`);
    }
  });

  it('names at least one test for every rule', () => {
    for (const rule of rules) {
      assert.match(rule.text, CITES, `${rule.id} names no test`);
    }
  });

  it('names only tests that exist, by their file and title', () => {
    const sources = new Map<string, string>();
    const citations = [...spec.matchAll(CITATION)];
    assert.ok(citations.length > 80, `found ${citations.length} citations`);
    for (const [, file, title] of citations) {
      if (!sources.has(file!)) {
        assert.ok(existsSync(file!), `${file} does not exist`);
        sources.set(file!, readFileSync(file!, 'utf8'));
      }
      assert.ok(sources.get(file!)!.includes(title!), `${file} has no test “${title}”`);
    }
  });

  it('marks **kit** exactly the rules the conformance kit has cases for', () => {
    const marked = rules.filter((rule) => /\*\*kit\*\*/.test(rule.text)).map((rule) => rule.id);
    const checked = [...new Set(kitCases.map((kitCase) => kitCase.rule))];
    assert.deepEqual(checked.sort(), [...marked].sort());
  });

  it('lists every case of the kit in §14, by rule and name', () => {
    const section = spec.slice(spec.indexOf('## 14.'), spec.indexOf('## 15.'));
    const listed = [...section.matchAll(/^\| (R\d+\.\d+) \| (.+) \|$/gm)].map(
      ([, r, n]) => `${r} ${n}`,
    );
    assert.deepEqual(
      listed,
      kitCases.map((kitCase) => `${kitCase.rule} ${kitCase.name}`),
    );
  });
});
