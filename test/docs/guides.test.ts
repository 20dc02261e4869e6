// The guides name example files and tests, and link to each other: all of them must exist,
// so a guide never points a reader at something the repository no longer has.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

const DIR = 'docs/guides';
const guides = readdirSync(DIR).filter((name) => name.endsWith('.md'));

describe('docs/guides', () => {
  it('lists every guide in its README, and the README is linked from the top README', () => {
    const index = readFileSync(join(DIR, 'README.md'), 'utf8');
    for (const guide of guides.filter((name) => name !== 'README.md')) {
      assert.ok(index.includes(`](${guide})`), `${guide} is not listed`);
    }
    assert.ok(
      readFileSync('README.md', 'utf8').includes('docs/guides/'),
      'README links the guides',
    );
  });

  for (const guide of guides) {
    it(`${guide}: every link, example path and test it names exists`, () => {
      const text = readFileSync(join(DIR, guide), 'utf8');
      const links = [...text.matchAll(/\]\(([^)#]+)(?:#[^)]*)?\)/g)].map(([, target]) => target!);
      for (const link of links.filter((target) => !/^https?:/.test(target))) {
        assert.ok(existsSync(join(dirname(join(DIR, guide)), link)), `link ${link}`);
      }
      const paths = [...text.matchAll(/`((?:examples|test)\/[^`\s]+)`/g)].map(([, path]) => path!);
      for (const path of paths) assert.ok(existsSync(path), `path ${path}`);
      // A guide that names no test is not checked by anything.
      if (guide !== 'README.md') assert.match(text, /Tested by `test\//);
    });
  }
});
