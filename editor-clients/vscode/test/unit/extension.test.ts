/**
 * extension.ts loaded for real, with `vscode` and `vscode-languageclient/node`
 * replaced by fakes through the module seam (test/mocks/vscode.ts).
 */

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { fakeVscode, installModuleMocks, reset, state } from '../mocks/vscode';

interface FakeClientOptions {
  documentSelector: { scheme: string; language: string }[];
  initializationOptions: unknown;
  errorHandler: { closed(): { action: number; handled?: boolean } };
  middleware: {
    workspace: {
      configuration: (params: { items: { section?: string }[] }, token: unknown, next: (...args: unknown[]) => unknown) => Promise<unknown>;
    };
  };
}

const created: FakeLanguageClient[] = [];

class FakeLanguageClient {
  started = false;
  notifications = new Map<string, (params: unknown) => void>();
  errorsShown: (boolean | 'force')[] = [];
  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: unknown,
    readonly clientOptions: FakeClientOptions,
  ) {
    created.push(this);
  }
  start() { this.started = true; return Promise.resolve(); }
  stop() { this.started = false; return Promise.resolve(); }
  onNotification(method: string, handler: (params: unknown) => void) { this.notifications.set(method, handler); }
  sendRequest() { return Promise.resolve(null); }
  sendNotification() { return Promise.resolve(); }
  error(_message: string, _data?: unknown, showNotification: boolean | 'force' = true) { this.errorsShown.push(showNotification); }
}

installModuleMocks({
  vscode: fakeVscode,
  'vscode-languageclient/node': {
    LanguageClient: FakeLanguageClient,
    CloseAction: { DoNotRestart: 1, Restart: 2 },
    ErrorAction: { Continue: 1, Shutdown: 2 },
  },
});

// eslint-disable-next-line @typescript-eslint/no-require-imports
const extension = require('../../src/extension') as typeof import('../../src/extension');

function context() {
  return { subscriptions: [] as { dispose(): void }[] };
}

describe('activate', () => {
  beforeEach(() => {
    created.length = 0;
  });

  it('registers the commands, starts the client with the settings, and shows results', async () => {
    reset({
      'vqlsp.serverCommand': [process.execPath, 'serve'],
      'vqlsp.languages': ['plaintext', 'markdown'],
      'vqlsp.debounceMs': 20,
      'vqlsp.diagnostics.unit': 'paragraph',
    });
    state.activeTextEditor = {
      document: { uri: { toString: () => 'file:///a.txt' }, languageId: 'plaintext' },
      selection: { active: { line: 2, character: 5 } },
    };
    const ctx = context();
    await extension.activate(ctx as never);
    assert.deepEqual([...state.commands.keys()].sort(), ['vqlsp.restartServer', 'vqlsp.showDocumentStats', 'vqlsp.showOutput']);
    assert.equal(created.length, 1);
    const [client] = created;
    assert.equal(client.started, true);
    assert.deepEqual(client.clientOptions.initializationOptions, {
      debounceMs: 20,
      languages: ['plaintext', 'markdown'],
      diagnostics: { unit: 'paragraph' },
    });
    assert.deepEqual(client.clientOptions.documentSelector, [
      { scheme: 'file', language: 'plaintext' },
      { scheme: 'untitled', language: 'plaintext' },
      { scheme: 'file', language: 'markdown' },
      { scheme: 'untitled', language: 'markdown' },
    ]);
    assert.equal(typeof client.serverOptions, 'function', 'the server is launched by launchServer');

    client.notifications.get('vqlsp/classification')?.({
      uri: 'file:///a.txt', version: 1, label: 'tech', probabilities: { tech: 0.61, sport: 0.39 },
      tokens: 10, reused_fraction: 0, ms: 3, textHash: '00',
    });
    assert.equal(state.statusItems[0].text, '$(symbol-keyword) tech 61%');
    assert.equal(state.statusItems[0].visible, true);

    // Show Compute Stats asks for the active document with the cursor of its editor.
    const requests: unknown[] = [];
    client.sendRequest = (...args: unknown[]) => { requests.push(args); return Promise.resolve(null); };
    await state.commands.get('vqlsp.showDocumentStats')?.();
    assert.deepEqual(requests, [['workspace/executeCommand', {
      command: 'vqlsp.documentStats', arguments: ['file:///a.txt', { line: 2, character: 5 }],
    }]]);

    // workspace/configuration pulls get our options for "vqlsp" and the editor's answer otherwise.
    const answer = await client.clientOptions.middleware.workspace.configuration(
      { items: [{ section: 'vqlsp' }, { section: 'editor' }] }, undefined, () => Promise.resolve(['raw', 'editor-config']));
    assert.deepEqual(answer, [client.clientOptions.initializationOptions, 'editor-config']);

    // Once up, a crash restarts the server quietly; the client's own notifications show again.
    assert.deepEqual(client.clientOptions.errorHandler.closed(), { action: 2, handled: true });
    (client as unknown as { error(m: string): void }).error('x');
    assert.deepEqual(client.errorsShown, [true]);

    await extension.deactivate();
    assert.equal(client.started, false);
    for (const d of ctx.subscriptions) { d.dispose(); }
  });

  it('shows an install hint and starts nothing when vqlsp is missing', async () => {
    reset({ 'vqlsp.serverCommand': [], 'vqlsp.pythonPath': '' });
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent-dir';
    try {
      await extension.activate(context() as never);
    } finally {
      process.env.PATH = savedPath;
    }
    assert.equal(created.length, 0);
    assert.equal(state.errors.length, 1);
    assert.match(state.errors[0], /`vqlsp` was not found on PATH\. Install the server from a vqlsp checkout/);
    assert.equal(state.statusItems[0].text, '$(error) vqlsp');
    await extension.deactivate();
  });

  it('re-sends options when settings change', async () => {
    reset({ 'vqlsp.serverCommand': [process.execPath, 'serve'] });
    await extension.activate(context() as never);
    const [client] = created;
    const sent: unknown[] = [];
    client.sendNotification = (...args: unknown[]) => { sent.push(args); return Promise.resolve(); };
    state.settings['vqlsp.positionPolicy'] = 'exact';
    await state.configurationListeners[0]({ affectsConfiguration: (s: string) => s === 'vqlsp' || s === 'vqlsp.positionPolicy' });
    assert.deepEqual(sent, [['workspace/didChangeConfiguration', { settings: { vqlsp: { positionPolicy: 'exact' } } }]]);
    await extension.deactivate();
  });
});
