import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { COMMANDS, VqlspController, type ClientLike, type ClientSpec, type Host } from '../../src/controller';
import { INSTALL_HINT } from '../../src/launch';
import { CLASSIFICATION_NOTIFICATION, DOCUMENT_STATS_COMMAND, RESYNC_NOTIFICATION } from '../../src/protocol';
import { classification, reader } from './helpers';

class FakeHost implements Host {
  settingsValues: Record<string, unknown> = { serverCommand: [process.execPath, 'serve'] };
  errors: { message: string; actions: string[] }[] = [];
  infos: string[] = [];
  document: { uri: string; languageId: string; cursor?: { line: number; character: number } } | undefined = { uri: 'file:///notes.md', languageId: 'markdown' };
  settingsOpened = 0;
  errorAnswer: string | undefined;
  readonly output = {
    text: '',
    shown: 0,
    append: (text: string) => { this.output.text += text; },
    appendLine: (text: string) => { this.output.text += text + '\n'; },
    show: () => { this.output.shown += 1; },
  };
  readonly statusItem = {
    text: '',
    tooltip: undefined as string | undefined,
    command: undefined as string | undefined,
    visible: false,
    show: () => { this.statusItem.visible = true; },
    hide: () => { this.statusItem.visible = false; },
  };
  settings() { return reader(this.settingsValues); }
  showError(message: string, ...actions: string[]) {
    this.errors.push({ message, actions });
    return Promise.resolve(this.errorAnswer);
  }
  showInfo(message: string) { this.infos.push(message); }
  activeDocument() { return this.document; }
  openDocuments = new Map([['file:///notes.md', { uri: 'file:///notes.md', languageId: 'markdown', version: 7, text: 'Shares fell.\n' }]]);
  openDocument(uri: string) { return this.openDocuments.get(uri); }
  openSettings() { this.settingsOpened += 1; }
}

class FakeClient implements ClientLike {
  handlers = new Map<string, (params: unknown) => void>();
  requests: [string, unknown][] = [];
  notifications: [string, unknown][] = [];
  stopped = 0;
  response: unknown = null;
  constructor(readonly spec: ClientSpec, private readonly startResult: () => Promise<void> = () => Promise.resolve()) {}
  start() { return this.startResult(); }
  stop() { this.stopped += 1; return Promise.resolve(); }
  onNotification(method: string, handler: (params: unknown) => void) { this.handlers.set(method, handler); }
  sendRequest<R>(method: string, params: unknown): Promise<R> {
    this.requests.push([method, params]);
    return Promise.resolve(this.response as R);
  }
  sendNotification(method: string, params: unknown) { this.notifications.push([method, params]); return Promise.resolve(); }
  notify(params: unknown) { this.handlers.get(CLASSIFICATION_NOTIFICATION)?.(params); }
}

function setup(startResult?: (spec: ClientSpec) => Promise<void>) {
  const host = new FakeHost();
  const clients: FakeClient[] = [];
  const controller = new VqlspController(host, (spec) => {
    const client = new FakeClient(spec, startResult ? () => startResult(spec) : undefined);
    clients.push(client);
    return client;
  });
  return { host, clients, controller };
}

describe('VqlspController start', () => {
  it('builds the client from settings and shows the classification of the active document', async () => {
    const { host, clients, controller } = setup();
    host.settingsValues = { ...host.settingsValues, debounceMs: 5, languages: ['markdown'], 'diagnostics.threshold': 0.1 };
    await controller.start();
    assert.equal(clients.length, 1);
    const [client] = clients;
    assert.deepEqual(client.spec.initializationOptions, { debounceMs: 5, languages: ['markdown'], diagnostics: { threshold: 0.1 } });
    assert.deepEqual(client.spec.languages, ['markdown']);
    assert.deepEqual(client.spec.configurationSection('vqlsp'), client.spec.initializationOptions);
    assert.equal(host.statusItem.text, '$(sync~spin) vqlsp');

    client.notify(classification({ version: 2 }));
    assert.equal(host.statusItem.text, '$(symbol-keyword) sport 87%');
    assert.ok(host.statusItem.tooltip?.includes('reused 93% of the work · 12.3 ms'));
    assert.equal(host.statusItem.command, COMMANDS.showDocumentStats);

    client.notify(classification({ version: 1, label: 'tech' }));
    assert.equal(host.statusItem.text, '$(symbol-keyword) sport 87%', 'an older version is ignored');
    client.notify({ uri: 'file:///notes.md' });
    assert.ok(host.output.text.includes('ignored malformed classification'));
    assert.deepEqual(host.errors, []);
  });

  it('shows a classification without a document label (a model with no document head)', async () => {
    const { host, clients, controller } = setup();
    await controller.start();
    clients[0].notify(classification({ version: 3, label: null }));
    assert.equal(host.statusItem.text, '$(symbol-keyword) no label');
    assert.ok(host.statusItem.tooltip?.startsWith('vqlsp: this model has no document label'));
  });

  it('answers a resync by sending the whole document again', async () => {
    const { host, clients, controller } = setup();
    await controller.start();
    const [client] = clients;
    client.handlers.get(RESYNC_NOTIFICATION)?.({ uri: 'file:///notes.md', version: 6, reason: 'range past the end' });
    assert.deepEqual(client.notifications, [[
      'textDocument/didOpen',
      { textDocument: { uri: 'file:///notes.md', languageId: 'markdown', version: 7, text: 'Shares fell.\n' } },
    ]]);
    assert.ok(host.output.text.includes('server resync of file:///notes.md (range past the end): sending its text, version 7'));
    client.handlers.get(RESYNC_NOTIFICATION)?.({ uri: 'file:///closed.md', version: 1, reason: 'x' });
    client.handlers.get(RESYNC_NOTIFICATION)?.({ uri: 42 });
    assert.equal(client.notifications.length, 1, 'nothing to send for a closed document or bad params');
    assert.ok(host.output.text.includes('the document is no longer open'));
    assert.ok(host.output.text.includes('ignored malformed resync'));
  });

  it('hides the status item for documents of other languages', async () => {
    const { host, controller } = setup();
    await controller.start();
    host.document = { uri: 'file:///main.py', languageId: 'python' };
    controller.refreshStatus();
    assert.equal(host.statusItem.visible, false);
  });

  it('explains how to install when the server is not found, without starting a client', async () => {
    const { host, clients, controller } = setup();
    host.settingsValues = { pythonPath: '/no/such/python' };
    host.errorAnswer = 'Open Settings';
    await controller.start();
    assert.equal(clients.length, 0);
    assert.equal(host.errors.length, 1);
    assert.ok(host.errors[0].message.includes('`/no/such/python` (from `vqlsp.pythonPath`) does not exist'));
    assert.ok(host.errors[0].message.includes(INSTALL_HINT));
    assert.deepEqual(host.errors[0].actions, ['Open Settings', 'Show Output']);
    assert.equal(host.statusItem.text, '$(error) vqlsp');
    await Promise.resolve();
    assert.equal(host.settingsOpened, 1);
    assert.equal(controller.isRunning, false);
  });

  it('reports a server that exits before initializing, with the reason from its stderr', async () => {
    // What a Python without vqlsp does: prints "No module named vqlsp" and exits 1.
    const { host, controller } = setup(async (spec) => {
      const child = await spec.launch();
      await new Promise((resolve) => child.once('exit', resolve));
      throw new Error('Pending response rejected since connection got disposed');
    });
    host.settingsValues = {
      serverCommand: [process.execPath, '-e', "process.stderr.write('/venv/bin/python: No module named vqlsp\\n'); process.exit(1)"],
    };
    await controller.start();
    assert.equal(host.errors.length, 1);
    assert.ok(host.errors[0].message.includes('has no vqlsp installed'), host.errors[0].message);
    assert.ok(host.errors[0].message.includes('pip install -e <checkout>'));
    // vscode-languageclient copies a spawned server's stderr into the output channel itself
    // (not this fake client): the controller must not copy it too, or every line shows twice.
    assert.ok(!host.output.text.includes('No module named vqlsp'), 'the controller leaves stderr to the client');
    assert.equal(controller.isRunning, false);
  });

  it('reports ENOENT from the client as not found', async () => {
    const { host, controller } = setup(() => Promise.reject(Object.assign(new Error('spawn vqlsp ENOENT'), { code: 'ENOENT' })));
    await controller.start();
    assert.ok(host.errors[0].message.includes('was not found'));
    assert.ok(host.errors[0].message.includes(INSTALL_HINT));
  });

  it('does not restart a server that never came up, and gives up after repeated crashes', async () => {
    let now = 0;
    const host = new FakeHost();
    const specs: ClientSpec[] = [];
    const controller = new VqlspController(host, (spec) => { specs.push(spec); return new FakeClient(spec); }, () => now);
    await controller.start();
    const [spec] = specs;
    for (let i = 0; i < 4; i++) {
      now += 1000;
      assert.equal(spec.shouldRestart(), true);
    }
    now += 1000;
    assert.equal(spec.shouldRestart(), false);
    assert.ok(host.errors[0].message.includes('crashed 5 times'));
    assert.equal(controller.isRunning, false);
  });
});

describe('VqlspController commands and configuration', () => {
  it('asks the server for document stats of the active document', async () => {
    const { host, clients, controller } = setup();
    await controller.start();
    clients[0].response = { ...classification(), cachedMb: 1.5 };
    await controller.showDocumentStats();
    assert.deepEqual(clients[0].requests, [['workspace/executeCommand', { command: DOCUMENT_STATS_COMMAND, arguments: ['file:///notes.md'] }]]);
    assert.deepEqual(host.infos, ['vqlsp: sport 87% · 812 tokens · reused 93% · 12.3 ms']);
    assert.ok(host.output.text.includes('cachedMb: 1.5'));
  });

  it('sends the cursor with the stats request and shows the compute of the sentence there', async () => {
    const { host, clients, controller } = setup();
    host.document = { uri: 'file:///notes.md', languageId: 'markdown', cursor: { line: 0, character: 4 } };
    await controller.start();
    clients[0].response = {
      ...classification(),
      compute: { rowsPerToken: 0.25, learnersPerRow: null },
      computeAtCursor: { rowsPerToken: 2, learnersPerRow: null, lastUpdate: true },
    };
    await controller.showDocumentStats();
    assert.deepEqual(clients[0].requests, [['workspace/executeCommand', {
      command: DOCUMENT_STATS_COMMAND, arguments: ['file:///notes.md', { line: 0, character: 4 }],
    }]]);
    const line = 'this sentence: 2.00 layers recomputed per token (document mean 0.25)';
    assert.deepEqual(host.infos, [`vqlsp: sport 87% · 812 tokens · reused 93% · 12.3 ms · ${line}`]);
    assert.ok(host.output.text.includes(line));
  });

  it('says so when stats are asked for while the server is down', async () => {
    const { host, controller } = setup();
    await controller.showDocumentStats();
    assert.equal(host.errors[0].message, 'vqlsp: the language server is not running.');
  });

  it('pushes changed options with didChangeConfiguration', async () => {
    const { host, clients, controller } = setup();
    await controller.start();
    host.settingsValues = { ...host.settingsValues, 'diagnostics.severity': 'warning' };
    await controller.onConfigurationChanged((section) => ['vqlsp', 'vqlsp.diagnostics', 'vqlsp.diagnostics.severity'].includes(section));
    assert.deepEqual(clients[0].notifications, [['workspace/didChangeConfiguration', { settings: { vqlsp: { diagnostics: { severity: 'warning' } } } }]]);
    await controller.onConfigurationChanged((section) => section === 'editor');
    assert.equal(clients[0].notifications.length, 1, 'other sections are not ours');
    assert.equal(clients.length, 1);
  });

  it('restarts when the server command changes', async () => {
    const { clients, controller } = setup();
    await controller.start();
    await controller.onConfigurationChanged((section) => section === 'vqlsp' || section === 'vqlsp.serverCommand');
    assert.equal(clients.length, 2);
    assert.equal(clients[0].stopped, 1);
    assert.equal(controller.isRunning, true);
  });

  it('restarts when the languages change (the document selector is fixed per client)', async () => {
    const { host, clients, controller } = setup();
    await controller.start();
    host.settingsValues = { ...host.settingsValues, languages: ['markdown', 'latex'] };
    await controller.onConfigurationChanged((section) => section === 'vqlsp' || section === 'vqlsp.languages');
    assert.equal(clients.length, 2);
    assert.deepEqual(clients[1].spec.languages, ['markdown', 'latex']);
  });

  it('restart clears stale classifications', async () => {
    const { clients, controller } = setup();
    await controller.start();
    clients[0].notify(classification());
    await controller.restart();
    assert.equal(controller.store.get('file:///notes.md'), undefined);
  });
});
