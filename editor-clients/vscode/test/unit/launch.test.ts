import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { earlyExitMessage, findExecutable, launchServer, preflight, serverCommand, INSTALL_HINT } from '../../src/launch';
import { reader } from './helpers';

describe('serverCommand', () => {
  it('prefers vqlsp.serverCommand', () => {
    assert.deepEqual(serverCommand(reader({ serverCommand: ['/venv/bin/vqlsp', 'serve', '--log', 'debug'], pythonPath: '/usr/bin/python3' })), {
      command: '/venv/bin/vqlsp',
      args: ['serve', '--log', 'debug'],
      origin: 'vqlsp.serverCommand',
    });
  });

  it('accepts a single string as the command', () => {
    assert.equal(serverCommand(reader({ serverCommand: '/venv/bin/vqlsp' })).command, '/venv/bin/vqlsp');
  });

  it('runs the module with vqlsp.pythonPath', () => {
    assert.deepEqual(serverCommand(reader({ serverCommand: [], pythonPath: '/venv/bin/python' })), {
      command: '/venv/bin/python',
      args: ['-m', 'vqlsp', 'serve'],
      origin: 'vqlsp.pythonPath',
    });
  });

  it('falls back to vqlsp on PATH', () => {
    assert.deepEqual(serverCommand(reader({ serverCommand: [], pythonPath: '' })), { command: 'vqlsp', args: ['serve'], origin: 'PATH' });
  });
});

describe('findExecutable and preflight', () => {
  const bin = path.join(path.sep, 'opt', 'bin');
  const exists = (file: string) => file === path.join(bin, 'vqlsp');

  it('searches PATH for bare names', () => {
    assert.equal(findExecutable('vqlsp', { PATH: ['/nowhere', bin].join(path.delimiter) }, exists), path.join(bin, 'vqlsp'));
    assert.equal(findExecutable('vqlsp', { PATH: '/nowhere' }, exists), undefined);
  });

  it('checks paths directly', () => {
    assert.equal(findExecutable(path.join(bin, 'vqlsp'), {}, exists), path.join(bin, 'vqlsp'));
  });

  it('says how to install when vqlsp is not on PATH', () => {
    const message = preflight({ command: 'vqlsp', args: ['serve'], origin: 'PATH' }, { PATH: '/nowhere' });
    assert.ok(message !== undefined);
    assert.ok(message.includes('`vqlsp` was not found on PATH'));
    assert.ok(message.includes(INSTALL_HINT) && message.includes('pip install -e <checkout>'));
  });

  it('names the setting that points to a missing interpreter', () => {
    const message = preflight({ command: '/missing/python', args: ['-m', 'vqlsp', 'serve'], origin: 'vqlsp.pythonPath' });
    assert.ok(message?.includes('`/missing/python` (from `vqlsp.pythonPath`) does not exist'));
  });

  it('passes a command that exists', () => {
    assert.equal(preflight({ command: process.execPath, args: [], origin: 'vqlsp.serverCommand' }), undefined);
  });
});

describe('earlyExitMessage', () => {
  const python = { command: '/venv/bin/python', args: ['-m', 'vqlsp', 'serve'], origin: 'vqlsp.pythonPath' as const };

  it('recognises a Python without vqlsp', () => {
    const message = earlyExitMessage(python, 1, "/venv/bin/python: No module named vqlsp\n");
    assert.ok(message.includes('has no vqlsp installed'));
    assert.ok(message.includes(INSTALL_HINT));
  });

  it('quotes the last stderr line otherwise', () => {
    const message = earlyExitMessage(python, 2, 'loading\nvqlsp: error: checkpoint /x does not exist\n');
    assert.ok(message.includes('exited (code 2): vqlsp: error: checkpoint /x does not exist'), message);
  });
});

describe('launchServer', () => {
  it('rejects with ENOENT for a missing executable', async () => {
    await assert.rejects(launchServer({ command: '/definitely/not/here', args: [], origin: 'vqlsp.serverCommand' }), (error: NodeJS.ErrnoException) => error.code === 'ENOENT');
  });

  it('streams stderr and reports the exit with its tail', async () => {
    const chunks: string[] = [];
    const exited = new Promise<[number | null, string]>((resolve) => {
      void launchServer(
        { command: process.execPath, args: ['-e', "process.stderr.write('No module named vqlsp\\n'); process.exit(3)"], origin: 'vqlsp.pythonPath' },
        { onStderr: (chunk) => chunks.push(chunk), onExit: (code, tail) => { resolve([code, tail]); } },
      );
    });
    const [code, tail] = await exited;
    assert.equal(code, 3);
    assert.equal(tail, 'No module named vqlsp\n');
    assert.equal(chunks.join(''), 'No module named vqlsp\n');
  });
});
