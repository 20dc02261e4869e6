import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatListen, parseListen } from '../../../src/server/listen-address.js';

describe('parseListen', () => {
  it('reads [host:]port with 127.0.0.1 as the default host', () => {
    assert.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen(':8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseListen('[::1]:3031'), { host: '::1', port: 3031 });
    for (const bad of ['', 'localhost', 'a:b', '1.2.3.4:']) {
      assert.throws(() => parseListen(bad), /is not \[host:\]port/);
    }
    assert.throws(
      () => parseListen('127.0.0.1:99999'),
      /port 99999 is out of range \(0 to 65535\)/,
    );
  });
});

describe('formatListen', () => {
  it('writes an address as people do: IPv6 in brackets, a Unix socket as unix:PATH', () => {
    assert.equal(formatListen({ host: '127.0.0.1', port: 8080 }), '127.0.0.1:8080');
    assert.equal(formatListen({ host: '::1', port: 3031 }), '[::1]:3031');
    assert.equal(formatListen({ host: '', port: 0, path: '/run/app.sock' }), 'unix:/run/app.sock');
  });

  it('reads back what parseListen reads', () => {
    for (const text of ['0.0.0.0:80', '[::1]:3031', 'unix:/run/app.sock']) {
      assert.equal(formatListen(parseListen(text)), text);
    }
  });
});
