import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ResponsesInProgress } from '../../../src/server/responses-in-progress.js';

function responseOn(socket: Socket): ServerResponse {
  return new ServerResponse(new IncomingMessage(socket));
}

describe('ResponsesInProgress', () => {
  it('holds the responses in progress of every connection, pipelined ones included', () => {
    const inProgress = new ResponsesInProgress();
    const [one, two] = [new Socket(), new Socket()];
    const first = responseOn(one);
    const pipelined = responseOn(one);
    const other = responseOn(two);
    inProgress.add(one, first);
    inProgress.add(one, pipelined);
    inProgress.add(two, other);
    assert.deepEqual(new Set(inProgress), new Set([first, pipelined, other]));

    inProgress.delete(one, first);
    assert.deepEqual(new Set(inProgress), new Set([pipelined, other]));
    inProgress.delete(one, pipelined);
    inProgress.delete(two, other);
    assert.deepEqual([...inProgress], []);
  });

  it('takes a kept-alive connection’s next response after the last one finished', () => {
    const inProgress = new ResponsesInProgress();
    const socket = new Socket();
    const first = responseOn(socket);
    inProgress.add(socket, first);
    inProgress.delete(socket, first);
    const next = responseOn(socket);
    inProgress.add(socket, next);
    assert.deepEqual([...inProgress], [next]);
    // A response deleted twice (or never added) changes nothing.
    inProgress.delete(socket, first);
    inProgress.delete(new Socket(), next);
    assert.deepEqual([...inProgress], [next]);
  });
});
